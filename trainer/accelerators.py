"""Accelerator switches: mixed precision and steps per execution, per device kind.

The device kind ("tpu", "gpu" or "cpu") is a plain argument: the strategy decides where a
run trains, and `device_kind` reads it off the strategy.
"""

from __future__ import annotations

from typing import Any

from trainer.keras_api import keras, tf

DEVICE_KINDS = ("tpu", "gpu", "cpu")

# What --mixed-precision auto means per device: bfloat16 is native on TPUs and needs no loss
# scaling; float16 runs on the tensor cores of GPUs; a CPU computes fastest in float32.
AUTO_POLICY = {"tpu": "mixed_bfloat16", "gpu": "mixed_float16", "cpu": "float32"}

# Steps per tf.function call when --steps-per-execution is unset: a TPU pays a host round
# trip per call, so it runs many steps per call; CPUs and GPUs barely gain (bench/).
AUTO_STEPS_PER_EXECUTION = {"tpu": 32, "gpu": 1, "cpu": 1}


def device_kind(strategy: Any) -> str:
    """Where the strategy trains: "tpu", "gpu" or "cpu"."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    try:
        devices = list(strategy.extended.worker_devices)
    except (RuntimeError, NotImplementedError, AttributeError):
        # The default strategy has no device list: ops go to the first GPU when one is visible.
        devices = [d.name for d in tf.config.list_logical_devices()]
    names = " ".join(devices).upper()
    if "TPU" in names:
        return "tpu"
    return "gpu" if "GPU" in names else "cpu"


def resolve_policy(requested: str, kind: str) -> str:
    """The Keras dtype policy for --mixed-precision on a device kind."""
    if kind not in DEVICE_KINDS:
        raise ValueError(f"unknown device kind {kind!r}; expected one of {DEVICE_KINDS}")
    if requested == "auto":
        return AUTO_POLICY[kind]
    if requested == "none":
        return "float32"
    if requested not in ("mixed_bfloat16", "mixed_float16"):
        raise ValueError(f"unknown --mixed-precision {requested!r}")
    return requested


def apply_policy(policy: str) -> None:
    """Set the global Keras policy for the models built next (float32 resets it)."""
    keras.mixed_precision.set_global_policy(policy)


def steps_per_execution(requested: int | None, kind: str) -> int:
    """--steps-per-execution, or the device kind's default when it is unset."""
    return requested or AUTO_STEPS_PER_EXECUTION[kind]
