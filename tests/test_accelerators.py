"""Accelerator switches and optimizers: policies per device kind, loss scaling, momentum."""

from __future__ import annotations

import types

import numpy as np
import pytest

from tests.conftest import make_config
from trainer import accelerators
from trainer.flags import MIXED_PRECISION, OPTIMIZERS
from trainer.keras_api import keras, tf
from trainer.optimizers import make_loss, make_optimizer


@pytest.mark.parametrize(
    "requested,kind,policy",
    [
        ("auto", "tpu", "mixed_bfloat16"),
        ("auto", "gpu", "mixed_float16"),
        ("auto", "cpu", "float32"),
        ("none", "tpu", "float32"),
        ("mixed_bfloat16", "gpu", "mixed_bfloat16"),
        ("mixed_float16", "cpu", "mixed_float16"),
    ],
)
def test_mixed_precision_policy_per_device_kind(requested: str, kind: str, policy: str) -> None:
    assert accelerators.resolve_policy(requested, kind) == policy


def test_every_mixed_precision_flag_value_resolves_and_bad_values_are_named() -> None:
    for requested in MIXED_PRECISION:
        for kind in accelerators.DEVICE_KINDS:
            assert accelerators.resolve_policy(requested, kind) in (
                "float32",
                "mixed_bfloat16",
                "mixed_float16",
            )
    with pytest.raises(ValueError, match="fp8"):
        accelerators.resolve_policy("fp8", "gpu")
    with pytest.raises(ValueError, match="ipu"):
        accelerators.resolve_policy("auto", "ipu")


def test_device_kind_read_off_the_strategy() -> None:
    assert accelerators.device_kind(tf.distribute.get_strategy()) == "cpu"  # tests hide GPUs
    assert accelerators.device_kind(tf.distribute.OneDeviceStrategy("/cpu:0")) == "cpu"
    gpus = types.SimpleNamespace(
        extended=types.SimpleNamespace(worker_devices=("/job:worker/device:GPU:0",))
    )
    assert accelerators.device_kind(gpus) == "gpu"


def test_steps_per_execution_defaults_to_32_on_tpu_only() -> None:
    assert accelerators.steps_per_execution(None, "tpu") == 32
    assert accelerators.steps_per_execution(None, "gpu") == 1
    assert accelerators.steps_per_execution(None, "cpu") == 1
    assert accelerators.steps_per_execution(8, "tpu") == 8


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizers_by_name_carry_rate_and_momentum(name: str) -> None:
    optimizer = make_optimizer(name, 0.02, 0.7, "float32")
    assert type(optimizer).__name__.lower() == name
    assert float(optimizer.learning_rate) == pytest.approx(0.02)
    momentum = optimizer.beta_1 if name == "adam" else optimizer.momentum
    assert float(momentum) == pytest.approx(0.7)


def test_float16_gets_a_loss_scale_optimizer_and_bfloat16_does_not() -> None:
    scaled = make_optimizer("sgd", 0.1, 0.9, "mixed_float16")
    assert isinstance(scaled, keras.mixed_precision.LossScaleOptimizer)
    assert scaled.dynamic
    assert not isinstance(
        make_optimizer("sgd", 0.1, 0.9, "mixed_bfloat16"), keras.mixed_precision.LossScaleOptimizer
    )
    with pytest.raises(ValueError, match="lamb"):
        make_optimizer("lamb", 0.1, 0.9, "float32")


def test_label_smoothing_moves_probability_mass_to_the_other_classes() -> None:
    labels = tf.constant([[0.0, 1.0, 0.0, 0.0]])
    certain = tf.constant([[1e-7, 1.0 - 3e-7, 1e-7, 1e-7]])
    assert float(make_loss(0.0)(labels, certain)) < 1e-5
    smoothed = float(make_loss(0.2)(labels, certain))
    assert smoothed > 1.0  # the loss now wants 0.05 on each wrong class
    hedged = tf.constant([[0.05, 0.85, 0.05, 0.05]])  # exactly the smoothed target
    assert float(make_loss(0.2)(labels, hedged)) < smoothed


def test_a_run_under_mixed_float16_scales_the_loss_and_exports(mnist_dir: str, tmp_path) -> None:
    from trainer.export import load_serving
    from trainer.train import train_and_evaluate

    cfg = make_config(
        ["--data-dir", mnist_dir, "--job-dir", str(tmp_path), "--cpu", "--model", "bn_conv"]
        + ["--epochs", "1", "--steps-per-epoch", "4", "--batch-size", "16"]
        + ["--mixed-precision", "mixed_float16", "--steps-per-execution", "2", "--jit-compile"]
    )
    try:
        result = train_and_evaluate(cfg)
    finally:
        accelerators.apply_policy("float32")
    model = result.model
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert model.get_layer("logits").compute_dtype == "float16"
    assert int(model._steps_per_execution.numpy()) == 2
    assert model._jit_compile is True
    assert np.isfinite(result.history["loss"][-1])
    out = load_serving(result.model_dir)(pixels=tf.zeros([2, 28, 28]))
    assert out["probabilities"].dtype == tf.float32
