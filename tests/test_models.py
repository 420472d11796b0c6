"""The model zoo: every registered model builds for its dataset, options reach the layers,
transfer learning keeps the backbone's preprocessing inside, and every flowers model trains
and exports through the real input pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_config
from trainer import accelerators, export, optimizers
from trainer.data import load_data
from trainer.datasets import DATASETS
from trainer.keras_api import keras, tf
from trainer.models import (
    MODELS,
    ModelOptions,
    backbone_preprocessing,
    build_model,
    set_backbone_trainable,
)

NO_DOWNLOAD = ModelOptions(pretrained_weights="none")
FLOWERS = DATASETS["flowers"]
MNIST = DATASETS["mnist"]
SIZE = 64  # the flowers_dir fixture's images


@pytest.fixture
def float32_policy():
    """Models built under a mixed policy must not leak it into later tests."""
    yield
    accelerators.apply_policy("float32")


def test_registry_and_datasets_name_the_same_models() -> None:
    listed = {name for spec in DATASETS.values() for name in spec.models}
    assert listed == set(MODELS)
    assert set(MNIST.models) == {"softmax", "dense", "conv", "bn_conv"}
    for name in ("squeeze_little", "squeeze_dense", "squeeze_fast", "squeezenet"):
        assert name in FLOWERS.models
    with pytest.raises(ValueError, match="does not fit dataset mnist"):
        build_model("squeezenet", MNIST, 28, NO_DOWNLOAD)


TRANSFER = ("mobilenet_v2", "transfer")  # built once below: each build takes seconds


@pytest.mark.parametrize(
    "dataset,name",
    [(spec.name, m) for spec in DATASETS.values() for m in spec.models if m not in TRANSFER],
)
def test_every_model_takes_0_255_pixels_and_returns_float32_probabilities(
    dataset: str, name: str
) -> None:
    spec = DATASETS[dataset]
    size = 28 if dataset == "mnist" else SIZE
    _check_io(build_model(name, spec, size, NO_DOWNLOAD), spec, size)


def _check_io(model, spec, size: int) -> None:
    assert model.input_shape == (None, size, size, spec.channels)
    assert model.output_shape == (None, spec.num_classes)
    assert model.output.dtype == tf.float32
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, spec.channels))
    probabilities = model(images.astype(np.float32), training=False).numpy()
    assert probabilities.sum(axis=-1) == pytest.approx([1.0, 1.0], abs=1e-5)
    # Preprocessing is the first layer after the input: a served model takes raw pixels.
    assert model.layers[1].name in ("rescale", "preprocess")


def test_squeezenet_family_sizes() -> None:
    counts = {
        name: build_model(name, FLOWERS, 192, NO_DOWNLOAD).count_params()
        for name in ("squeeze_little", "squeeze_dense", "squeeze_fast", "squeezenet")
    }
    assert 115_000 <= counts["squeezenet"] <= 125_000  # the codelab's "about 120k"
    assert counts["squeeze_little"] < counts["squeezenet"] / 2
    assert counts["squeeze_dense"] > counts["squeeze_little"]  # the dense head's weights


def test_squeeze_fast_halves_the_resolution_at_the_stem() -> None:
    model = build_model("squeeze_fast", FLOWERS, 192, NO_DOWNLOAD)
    stem = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert stem.strides == (2, 2) and stem.output_shape[1] == 96


@pytest.mark.parametrize("name", ["bn_conv", "squeezenet", "squeeze_fast"])
def test_dropout_and_batch_norm_momentum_reach_the_layers(name: str) -> None:
    spec = MNIST if name == "bn_conv" else FLOWERS
    size = 28 if name == "bn_conv" else SIZE
    model = build_model(name, spec, size, ModelOptions(dropout=0.17, bn_momentum=0.8))
    norms = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    drops = [la for la in model.layers if isinstance(la, keras.layers.Dropout)]
    assert norms and all(la.momentum == pytest.approx(0.8) for la in norms)
    assert drops and all(la.rate == pytest.approx(0.17) for la in drops)


# ---------------------------------------------------------------- transfer learning


def _backbone(model):
    return next(la for la in model.layers if isinstance(la, keras.Model))


@pytest.fixture(scope="module")
def mobilenet():
    return build_model("mobilenet_v2", FLOWERS, SIZE, NO_DOWNLOAD)


def test_mobilenet_v2_takes_pixels_and_preprocesses_inside(mobilenet) -> None:
    _check_io(mobilenet, FLOWERS, SIZE)
    pixels = tf.constant([[[[0.0, 127.5, 255.0]]]])
    # MobileNetV2 wants -1..1: the model maps raw 0-255 pixels there itself.
    assert mobilenet.get_layer("preprocess")(pixels).numpy().ravel() == pytest.approx(
        [-1.0, 0.0, 1.0]
    )
    # Other backbones bring their own: Caffe-style ResNet subtracts the ImageNet mean (BGR).
    caffe = backbone_preprocessing("ResNet50")(tf.constant([[[[0.0, 0.0, 0.0]]]]))
    assert caffe.numpy().ravel() == pytest.approx([-103.939, -116.779, -123.68], abs=1e-3)


def test_frozen_backbone_trains_only_the_head_and_fine_tune_at_splits_it(mobilenet) -> None:
    backbone = _backbone(mobilenet)
    assert not backbone.trainable
    assert [w.name.split("/")[0] for w in mobilenet.trainable_weights] == ["logits", "logits"]
    try:
        set_backbone_trainable(backbone, fine_tune=True, fine_tune_at=100)
        assert not any(la.trainable for la in backbone.layers[:100])
        assert all(la.trainable for la in backbone.layers[100:])
        assert 2 < len(mobilenet.trainable_weights) < len(mobilenet.weights)
        set_backbone_trainable(backbone, fine_tune=True, fine_tune_at=0)
        assert len(mobilenet.trainable_weights) > 100
    finally:
        set_backbone_trainable(backbone, fine_tune=False, fine_tune_at=0)
    assert len(mobilenet.trainable_weights) == 2


def test_pretrained_weights_from_a_file(mobilenet, tmp_path) -> None:
    source = _backbone(mobilenet)
    path = str(tmp_path / "backbone.h5")
    source.save_weights(path)
    loaded = build_model("mobilenet_v2", FLOWERS, SIZE, ModelOptions(pretrained_weights=path))
    for a, b in zip(source.weights, _backbone(loaded).weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="no such file"):
        build_model("mobilenet_v2", FLOWERS, SIZE, ModelOptions(pretrained_weights=path + "x"))


def test_any_keras_application_by_name_fine_tuned_and_clear_errors() -> None:
    options = ModelOptions(backbone="MobileNetV3Small", pretrained_weights="none", fine_tune=True)
    model = build_model("transfer", FLOWERS, SIZE, options)
    _check_io(model, FLOWERS, SIZE)
    assert _backbone(model).name.lower().startswith("mobilenetv3small")
    assert _backbone(model).trainable
    with pytest.raises(ValueError, match=r"unknown --backbone 'NoSuchNet'.*Xception"):
        build_model("transfer", FLOWERS, SIZE, ModelOptions(backbone="NoSuchNet"))
    with pytest.raises(ValueError, match="use --model transfer --backbone Xception"):
        build_model("mobilenet_v2", FLOWERS, SIZE, ModelOptions(backbone="Xception"))


# ---------------------------------------------------------------- mixed precision


@pytest.mark.parametrize(
    "name,policy",
    [
        ("squeezenet", "mixed_float16"),
        ("squeezenet", "mixed_bfloat16"),
        ("mobilenet_v2", "mixed_bfloat16"),
    ],
)
def test_mixed_precision_computes_in_half_and_outputs_float32(
    name: str, policy: str, float32_policy
) -> None:
    accelerators.apply_policy(policy)
    model = build_model(name, FLOWERS, SIZE, NO_DOWNLOAD)
    half = {la.compute_dtype for la in model.layers if isinstance(la, keras.layers.Dense)}
    assert half == {policy.split("_")[1]}
    assert model.output.dtype == tf.float32
    assert all(w.dtype == tf.float32 for w in model.weights)  # variables stay float32


# ---------------------------------------------------------------- train and export


def _jpegs(images) -> object:
    return tf.map_fn(
        lambda im: tf.io.encode_jpeg(tf.cast(im, tf.uint8), quality=95),
        images,
        fn_output_signature=tf.string,
    )


@pytest.mark.parametrize(
    "name,extra",
    # squeezenet trains and exports in tests/test_model_quality.py, through the whole run.
    [
        ("convnet", ["--mixed-precision", "mixed_float16"]),
        ("squeeze_little", ["--steps-per-execution", "2"]),
        ("squeeze_dense", ["--optimizer", "sgd", "--label-smoothing", "0.1"]),
        ("squeeze_fast", ["--optimizer", "rmsprop"]),
        ("mobilenet_v2", ["--fine-tune", "--fine-tune-at", "100"]),
    ],
)
def test_every_flowers_model_trains_and_exports_a_jpeg_signature(
    name: str, extra: list[str], flowers_dir: str, tmp_path, float32_policy
) -> None:
    cfg = make_config(
        ["--dataset", "flowers", "--data-dir", flowers_dir, "--image-size", str(SIZE)]
        + ["--model", name, "--batch-size", "8", "--pretrained-weights", "none", "--cpu"]
        + ["--job-dir", str(tmp_path)]
        + extra
    )
    data = load_data(cfg, FLOWERS)
    policy = accelerators.resolve_policy(cfg.mixed_precision, "cpu")
    accelerators.apply_policy(policy)
    options = ModelOptions.from_config(cfg)
    model = build_model(name, FLOWERS, SIZE, options)
    model.compile(
        optimizer=optimizers.make_optimizer(cfg.optimizer, 1e-3, cfg.momentum, policy),
        loss=optimizers.make_loss(cfg.label_smoothing),
        steps_per_execution=accelerators.steps_per_execution(cfg.steps_per_execution, "cpu"),
        jit_compile=cfg.jit_compile,
    )
    train = data.train_fn(tf.distribute.InputContext())
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(train, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert any(
        not np.array_equal(a, w.numpy())
        for a, w in zip(before, model.trainable_weights, strict=True)
    )

    path = str(tmp_path / "export")
    export.save_model(model, FLOWERS, SIZE, path)
    images, _ = next(iter(data.eval_fn(tf.distribute.InputContext())))
    out = export.load_serving(path)(image_bytes=_jpegs(images[:3]))
    assert out["probabilities"].dtype == tf.float32
    assert out["probabilities"].shape == (3, FLOWERS.num_classes)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-3)
    assert set(n.decode() for n in out["class_names"].numpy()) <= set(FLOWERS.class_names)
