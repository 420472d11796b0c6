"""The models of the two codelabs, by registry name.

Every builder takes float32 images with values 0-255 (preprocessing lives inside the model,
so the exported model serves raw pixels) and returns class probabilities in float32 (kept
float32 under mixed precision, for a stable softmax).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainer.datasets import DatasetSpec
from trainer.keras_api import keras


@dataclass(frozen=True)
class ModelOptions:
    """The model-shaping values of the config."""

    dropout: float = 0.3
    bn_momentum: float = 0.99
    backbone: str = "MobileNetV2"
    pretrained_weights: str = "imagenet"
    fine_tune: bool = False
    fine_tune_at: int = 0


def _inputs(spec: DatasetSpec, image_size: int) -> tuple[Any, Any]:
    inputs = keras.Input(shape=(image_size, image_size, spec.channels), name="image")
    return inputs, keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)


def _classifier(x: Any, spec: DatasetSpec) -> Any:
    """Class logits then a float32 softmax."""
    x = keras.layers.Dense(spec.num_classes, name="logits")(x)
    return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def _conv_bn_relu(x: Any, filters: int, kernel: int, strides: int, momentum: float) -> Any:
    # No bias before batch norm, no scale before relu: the codelab's batch-norm convnet.
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(scale=False, momentum=momentum)(x)
    return keras.layers.Activation("relu")(x)


# ---------------------------------------------------------------------------- MNIST


def softmax(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """One dense layer: the codelab's first model (about 0.92)."""
    inputs, x = _inputs(spec, image_size)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, _classifier(x, spec), name="softmax")


def dense(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """Dense 200/100/60/30 relu with dropout (about 0.98)."""
    inputs, x = _inputs(spec, image_size)
    x = keras.layers.Flatten()(x)
    for units in (200, 100, 60, 30):
        x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dropout(opts.dropout)(x)
    return keras.Model(inputs, _classifier(x, spec), name="dense")


def conv(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """Three conv layers 12/24/32 (kernels 3/6/6, strides 1/2/2), dense 200 (about 0.99)."""
    inputs, x = _inputs(spec, image_size)
    for filters, kernel, strides in ((12, 3, 1), (24, 6, 2), (32, 6, 2)):
        x = keras.layers.Conv2D(filters, kernel, strides, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(200, activation="relu")(x)
    x = keras.layers.Dropout(opts.dropout)(x)
    return keras.Model(inputs, _classifier(x, spec), name="conv")


def bn_conv(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """The codelab's batch-norm convnet (0.995 on full MNIST)."""
    inputs, x = _inputs(spec, image_size)
    for filters, kernel, strides in ((12, 3, 1), (24, 6, 2), (32, 6, 2)):
        x = _conv_bn_relu(x, filters, kernel, strides, opts.bn_momentum)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(200, use_bias=False)(x)
    x = keras.layers.BatchNormalization(scale=False, momentum=opts.bn_momentum)(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Dropout(opts.dropout)(x)  # dropout on the dense layer only
    return keras.Model(inputs, _classifier(x, spec), name="bn_conv")


# ---------------------------------------------------------------------------- flowers


def convnet(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """The codelab's TPU convnet: six conv layers, max pooling, global average pooling."""
    inputs, x = _inputs(spec, image_size)
    for filters, pool in ((16, False), (30, True), (60, True), (90, True), (110, True)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        if pool:
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(130, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(40, 1, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(opts.dropout)(x)
    return keras.Model(inputs, _classifier(x, spec), name="convnet")


ModelBuilder = Callable[[DatasetSpec, int, ModelOptions], Any]

MODELS: dict[str, ModelBuilder] = {
    "softmax": softmax,
    "dense": dense,
    "conv": conv,
    "bn_conv": bn_conv,
    "convnet": convnet,
}


def build_model(name: str, spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """The named model for a dataset (call inside the strategy's scope)."""
    if name not in spec.models:
        raise ValueError(f"model {name!r} does not fit dataset {spec.name}")
    return MODELS[name](spec, image_size, opts)
