"""Optimizers by name (--optimizer) and the loss, with loss scaling for float16."""

from __future__ import annotations

from typing import Any

from trainer.keras_api import keras

OPTIMIZER_NAMES = ("adam", "sgd", "rmsprop")


def make_optimizer(name: str, learning_rate: float, momentum: float, policy: str) -> Any:
    """The named optimizer; the schedule callback sets its rate every epoch.

    momentum is SGD's and RMSprop's momentum and Adam's beta_1 (its momentum term, 0.9 by
    default in both). Under mixed_float16 small gradients underflow, so the optimizer is
    wrapped in a dynamic LossScaleOptimizer, as Keras itself does for that policy.
    """
    if name == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum)
    elif name == "rmsprop":
        optimizer = keras.optimizers.RMSprop(learning_rate, momentum=momentum)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(learning_rate, beta_1=momentum)
    else:
        raise ValueError(f"unknown --optimizer {name!r}; choose from {', '.join(OPTIMIZER_NAMES)}")
    if policy == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def make_loss(label_smoothing: float) -> Any:
    """Cross-entropy on one-hot labels; smoothing moves that much mass to the other classes."""
    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
