"""Augmentation: class-keeping random changes, per image of a batch, in plain TensorFlow ops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.augment import (
    augment_batch,
    flip_and_saturate,
    rotation_shift_transforms,
    sample_bilinear,
    scale_saturation,
    shift_and_rotate,
)
from trainer.data import augment_image
from trainer.datasets import DATASETS
from trainer.keras_api import tf


def _transform(images: np.ndarray, degrees: float, dx: float, dy: float) -> np.ndarray:
    count, height, width = images.shape[:3]
    numbers = rotation_shift_transforms(
        tf.fill([count], math.radians(degrees)),
        tf.fill([count], dx),
        tf.fill([count], dy),
        height,
        width,
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=numbers,
        output_shape=[height, width],
        fill_value=0.0,
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    ).numpy()


def _digits(count: int = 1) -> np.ndarray:
    images = np.zeros((count, 28, 28, 1), np.float32)
    images[:, 8:20, 13:15] = 255.0  # a vertical bar, like a 1
    return images


def test_transform_shifts_right_and_up_and_turns_about_the_centre() -> None:
    image = _digits()
    moved = _transform(image, 0.0, dx=2.0, dy=-1.0)[0]
    np.testing.assert_array_equal(moved[7:19, 15:17], image[0, 8:20, 13:15])
    assert moved.sum() == image.sum()
    turned = _transform(image, 90.0, 0.0, 0.0)[0]
    rows, cols = np.nonzero(turned[..., 0])
    # A quarter turn makes the vertical bar horizontal, still centred near (13.5, 13.5).
    assert np.ptp(cols) == 11 and np.ptp(rows) == 1
    assert abs(rows.mean() - 13.5) <= 1 and abs(cols.mean() - 13.5) <= 1


@pytest.mark.parametrize("compiled", [False, True], ids=["ops", "xla"])
def test_sample_bilinear_matches_tensorflows_projective_transform(compiled: bool) -> None:
    rng = np.random.default_rng(1)
    images = tf.constant(rng.uniform(0, 255, (16, 28, 20, 2)), tf.float32)
    transforms = rotation_shift_transforms(
        tf.constant(rng.uniform(-0.6, 0.6, 16), tf.float32),
        tf.constant(rng.uniform(-5, 5, 16), tf.float32),
        tf.constant(rng.uniform(-5, 5, 16), tf.float32),
        28,
        20,
    )
    expected = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=[28, 20],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    ).numpy()
    sample = tf.function(sample_bilinear, jit_compile=True) if compiled else sample_bilinear
    actual = sample(images, transforms).numpy()
    assert (expected == 0).mean() > 0.05  # some pixels come from outside the image
    np.testing.assert_allclose(actual, expected, atol=0.01)


def test_augment_batch_takes_uint8_and_draws_per_image_and_batch() -> None:
    digits = tf.cast(tf.constant(_digits(8)), tf.uint8)
    first, second = augment_batch(digits, colour=False), augment_batch(digits, colour=False)
    assert first.dtype == tf.float32 and first.shape == (8, 28, 28, 1)
    moved = np.concatenate([first.numpy(), second.numpy()]).reshape(16, -1)
    assert len({row.tobytes() for row in moved}) == 16


def test_shift_and_rotate_draws_per_image_and_keeps_digits_inside_in_a_dataset_map() -> None:
    tf.random.set_seed(3)
    ds = tf.data.Dataset.from_tensors(_digits(16)).repeat(2).map(shift_and_rotate)
    batches = [batch.numpy() for batch in ds]
    for batch in batches:
        assert batch.shape == (16, 28, 28, 1) and batch.dtype == np.float32
        assert batch.min() >= 0.0 and batch.max() <= 255.0
        masses = batch.sum(axis=(1, 2, 3))
        np.testing.assert_allclose(masses, _digits().sum(), rtol=0.02)  # nothing falls off
    images = np.concatenate(batches)
    assert len({image.tobytes() for image in images}) == len(images)


def test_flip_and_saturate_per_image_stays_in_range_and_keeps_greys_grey() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (64, 8, 8, 3)).astype(np.float32)
    images[:, 0, 0] = 90.0  # a grey pixel in the top-left corner
    tf.random.set_seed(5)
    out = flip_and_saturate(tf.constant(images)).numpy()
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 255.0
    flipped = np.all(np.abs(out[:, 0, -1] - 90.0) < 0.5, axis=-1)
    assert 0 < flipped.sum() < len(images)  # each image flips or not on its own draw
    corners = np.where(flipped[:, None], out[:, 0, -1], out[:, 0, 0])
    np.testing.assert_allclose(corners, 90.0, atol=0.5)  # no colour to scale


def test_saturation_per_image_changes_colour_strength_not_brightness() -> None:
    reds = tf.fill([64, 1, 1, 3], 100.0) + tf.constant([100.0, 0.0, 0.0])
    tf.random.set_seed(7)
    out = flip_and_saturate(reds).numpy().reshape(64, 3)
    np.testing.assert_allclose(out.max(axis=1), 200.0, atol=0.5)  # HSV value kept
    assert out[:, 1].min() < 80.0 and out[:, 1].max() > 150.0  # from vivid to greyish
    # Matches TensorFlow's own saturation adjustment on 0-1 images.
    same = tf.image.adjust_saturation(reds[:1] / 255.0, 1.5).numpy() * 255.0
    mine = tf.image.hsv_to_rgb(tf.image.rgb_to_hsv(reds[:1]) * tf.constant([1.0, 1.5, 1.0])).numpy()
    np.testing.assert_allclose(mine, same, atol=0.5)


@pytest.mark.parametrize("factor", [0.0, 0.4, 1.0, 1.7, 2.0])
def test_scale_saturation_equals_the_hsv_round_trip(factor: float) -> None:
    rng = np.random.default_rng(int(factor * 10))
    images = rng.uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    images[:, 0] = images[:, 0, :, :1]  # a row of greys in every image
    images[:, 1, :, 2] = 0.0  # pixels that saturate fully when scaled up
    hsv = tf.image.rgb_to_hsv(images / 255.0) * tf.constant([1.0, factor, 1.0])
    expected = tf.image.hsv_to_rgb(tf.clip_by_value(hsv, 0.0, 1.0)).numpy() * 255.0
    actual = scale_saturation(tf.constant(images), tf.fill([8, 1, 1, 1], factor)).numpy()
    np.testing.assert_allclose(actual, expected, atol=0.05)


def test_augment_image_picks_by_dataset() -> None:
    tf.random.set_seed(11)
    digits = augment_image(tf.constant(_digits(4)), DATASETS["mnist"]).numpy()
    assert digits.shape == (4, 28, 28, 1)
    assert not np.array_equal(digits, _digits(4))
    flowers = augment_image(tf.zeros([4, 16, 16, 3]) + 10.0, DATASETS["flowers"]).numpy()
    np.testing.assert_allclose(flowers, 10.0, atol=1e-3)  # grey stays grey under flips
    # The compiled flowers augmentation, in a dataset map as training runs it: uint8 in,
    # float32 out, a draw per image and per batch.
    pinks = tf.cast(tf.fill([16, 4, 4, 3], 100) + tf.constant([20, 0, 0]), tf.uint8)
    ds = tf.data.Dataset.from_tensors(pinks).repeat(2)
    batches = list(ds.map(lambda b: augment_image(b, DATASETS["flowers"])).as_numpy_iterator())
    greens = np.concatenate([batch[:, 0, 0, 1] for batch in batches])
    assert batches[0].dtype == np.float32 and len(np.unique(greens.round(3))) == 32
    np.testing.assert_allclose(np.concatenate(batches).max(axis=-1), 120.0, atol=0.01)


def test_training_batches_are_augmented_and_evaluation_is_not(mnist_dir: str) -> None:
    from tests.conftest import make_config
    from trainer.data import load_data

    cfg = make_config(["--data-dir", mnist_dir, "--augment", "--batch-size", "32"])
    data = load_data(cfg, DATASETS["mnist"])
    images, labels = next(iter(data.train_fn(tf.distribute.InputContext())))
    assert images.shape == (32, 28, 28, 1) and images.dtype == tf.float32
    assert labels.shape == (32, 10)
    # Bilinear shifts and turns leave in-between grey levels that IDX digits rarely have.
    raw = next(iter(data.eval_fn(tf.distribute.InputContext())))[0].numpy()
    fraction = np.mean(images.numpy() != np.round(images.numpy()))
    assert fraction > 0.01 and np.all(raw == np.round(raw))
    assert pytest.approx(float(tf.reduce_sum(labels))) == 32.0
