"""The models of the two codelabs, by registry name.

Every builder takes float32 images with values 0-255 (preprocessing lives inside the model,
so the exported model serves raw pixels) and returns class probabilities in float32 (kept
float32 under mixed precision, for a stable softmax).
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainer.datasets import DatasetSpec
from trainer.keras_api import keras, tf


@dataclass(frozen=True)
class ModelOptions:
    """The model-shaping values of the config."""

    dropout: float = 0.3
    bn_momentum: float = 0.99
    backbone: str = "MobileNetV2"
    pretrained_weights: str = "imagenet"
    fine_tune: bool = False
    fine_tune_at: int = 0

    @classmethod
    def from_config(cls, cfg: Any) -> ModelOptions:
        """The model-shaping values of a trainer Config."""
        return cls(
            dropout=cfg.dropout,
            bn_momentum=cfg.bn_momentum,
            backbone=cfg.backbone,
            pretrained_weights=cfg.pretrained_weights,
            fine_tune=cfg.fine_tune,
            fine_tune_at=cfg.fine_tune_at,
        )


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


# --------------------------------------------------------------- flowers: squeezenets
# Fire modules (SqueezeNet, Iandola et al. 2016): a 1x1 "squeeze" convolution narrows the
# channels, then 1x1 and 3x3 "expand" convolutions side by side widen them again. Most of
# the parameters of a plain convnet sit in 3x3 kernels over many channels; squeezing first
# makes the same depth about ten times cheaper.


def _conv_relu(
    x: Any, filters: int, kernel: int, bn_momentum: float | None, strides: int = 1
) -> Any:
    """Conv + relu, then batch norm when bn_momentum is given (the codelab's order)."""
    x = keras.layers.Conv2D(filters, kernel, strides, padding="same", activation="relu")(x)
    if bn_momentum is not None:
        x = keras.layers.BatchNormalization(momentum=bn_momentum)(x)
    return x


def _fire(x: Any, squeeze: int, expand: int, bn_momentum: float | None) -> Any:
    """squeeze 1x1 -> (expand/2 1x1 | expand/2 3x3), concatenated to `expand` channels."""
    x = _conv_relu(x, squeeze, 1, bn_momentum)
    left = _conv_relu(x, expand // 2, 1, bn_momentum)
    right = _conv_relu(x, expand // 2, 3, bn_momentum)
    return keras.layers.Concatenate()([left, right])


def _fire_stack(x: Any, modules: tuple[tuple[int, int], ...], bn_momentum: float | None) -> Any:
    """Fire modules with a 2x2 max pool between each two (not after the last)."""
    for i, (squeeze, expand) in enumerate(modules):
        if i:
            x = keras.layers.MaxPooling2D(2)(x)
        x = _fire(x, squeeze, expand, bn_momentum)
    return x


# (squeeze, expand) of each fire module: the codelab's squeezenet, and a narrower one.
_SQUEEZENET_FIRES = ((24, 48), (48, 96), (64, 128), (48, 96), (24, 48))
_LITTLE_FIRES = ((16, 32), (32, 64), (32, 64), (32, 64), (16, 32))


def _squeeze_head(x: Any, spec: DatasetSpec, opts: ModelOptions) -> Any:
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(opts.dropout)(x)
    return _classifier(x, spec)


def squeeze_little(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """The codelab's first squeezenet, narrower and without batch norm (about 40k weights)."""
    inputs, x = _inputs(spec, image_size)
    x = _conv_relu(x, 32, 3, None)
    x = _fire_stack(x, _LITTLE_FIRES, None)
    return keras.Model(inputs, _squeeze_head(x, spec, opts), name="squeeze_little")


def squeeze_dense(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """Fire modules, then a dense head over the flattened last feature map.

    Global average pooling forgets where things are; flattening a small final map keeps
    it, at the cost of weights that grow with the image size.
    """
    inputs, x = _inputs(spec, image_size)
    x = _conv_relu(x, 32, 3, None)
    x = _fire_stack(x, _LITTLE_FIRES, None)
    x = keras.layers.MaxPooling2D(2)(x)
    x = _conv_relu(x, 16, 1, None)  # few channels: keeps the dense layer small
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(opts.dropout)(x)
    return keras.Model(inputs, _classifier(x, spec), name="squeeze_dense")


def squeeze_fast(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """The batch-norm squeezenet with fast downsampling: a 5x5 stride-2 stem and a pool.

    The first fire modules then run at a quarter of the resolution, where the full-size
    squeezenet spends most of its time: about 4x fewer operations per image.
    """
    inputs, x = _inputs(spec, image_size)
    x = _conv_relu(x, 32, 5, opts.bn_momentum, strides=2)
    x = keras.layers.MaxPooling2D(2)(x)
    x = _fire_stack(x, _SQUEEZENET_FIRES, opts.bn_momentum)
    return keras.Model(inputs, _squeeze_head(x, spec, opts), name="squeeze_fast")


def squeezenet(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """The codelab's batch-norm squeezenet (about 120k weights; 0.81 on TPU)."""
    inputs, x = _inputs(spec, image_size)
    x = _conv_relu(x, 32, 3, opts.bn_momentum)
    x = _fire_stack(x, _SQUEEZENET_FIRES, opts.bn_momentum)
    return keras.Model(inputs, _squeeze_head(x, spec, opts), name="squeezenet")


# ------------------------------------------------------ flowers: transfer learning


def backbone_builder(name: str) -> Callable[..., Any]:
    """The keras.applications model function of that name (MobileNetV2, Xception, ...)."""
    builder = getattr(keras.applications, name, None)
    if not callable(builder) or not name[:1].isupper():
        known = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise ValueError(f"unknown --backbone {name!r}; keras.applications has {', '.join(known)}")
    return builder


def backbone_preprocessing(name: str) -> Callable[[Any], Any]:
    """The backbone's own preprocess_input (it expects 0-255 inputs, as our models get)."""
    return importlib.import_module(backbone_builder(name).__module__).preprocess_input


def _local_weights(path: str) -> str:
    """A local copy of a weights file on gs:// (Keras opens weight files with h5py)."""
    if "://" not in path:
        return path
    local = os.path.join(tempfile.mkdtemp(prefix="backbone-"), os.path.basename(path))
    tf.io.gfile.copy(path, local)
    return local


def backbone_weights(pretrained: str) -> str | None:
    """--pretrained-weights: imagenet (downloaded by Keras), none, or a weights file."""
    if pretrained.lower() == "none":
        return None
    if pretrained.lower() == "imagenet":
        return "imagenet"
    if not tf.io.gfile.exists(pretrained):
        raise ValueError(f"--pretrained-weights {pretrained}: no such file")
    return _local_weights(pretrained)


def set_backbone_trainable(backbone: Any, fine_tune: bool, fine_tune_at: int) -> None:
    """Frozen unless fine-tuning; when fine-tuning, layers below fine_tune_at stay frozen."""
    backbone.trainable = fine_tune
    if fine_tune:
        for layer in backbone.layers[:fine_tune_at]:
            layer.trainable = False


def transfer(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """A keras.applications backbone (--backbone) under a new classifier head."""
    inputs = keras.Input(shape=(image_size, image_size, spec.channels), name="image")
    x = keras.layers.Lambda(backbone_preprocessing(opts.backbone), name="preprocess")(inputs)
    backbone = backbone_builder(opts.backbone)(
        include_top=False,
        weights=backbone_weights(opts.pretrained_weights),
        input_shape=(image_size, image_size, spec.channels),
    )
    set_backbone_trainable(backbone, opts.fine_tune, opts.fine_tune_at)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(opts.dropout)(x)
    name = f"transfer_{opts.backbone.lower()}"
    return keras.Model(inputs, _classifier(x, spec), name=name)


def mobilenet_v2(spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """The codelab's transfer learning: MobileNetV2 (0.86 frozen)."""
    if opts.backbone != "MobileNetV2":
        raise ValueError(
            f"model mobilenet_v2 does not take --backbone {opts.backbone}; "
            f"use --model transfer --backbone {opts.backbone}"
        )
    return transfer(spec, image_size, opts)


ModelBuilder = Callable[[DatasetSpec, int, ModelOptions], Any]

MODELS: dict[str, ModelBuilder] = {
    "softmax": softmax,
    "dense": dense,
    "conv": conv,
    "bn_conv": bn_conv,
    "convnet": convnet,
    "squeeze_little": squeeze_little,
    "squeeze_dense": squeeze_dense,
    "squeeze_fast": squeeze_fast,
    "squeezenet": squeezenet,
    "mobilenet_v2": mobilenet_v2,
    "transfer": transfer,
}


def build_model(name: str, spec: DatasetSpec, image_size: int, opts: ModelOptions) -> Any:
    """The named model for a dataset (call inside the strategy's scope)."""
    if name not in spec.models:
        raise ValueError(f"model {name!r} does not fit dataset {spec.name}")
    return MODELS[name](spec, image_size, opts)
