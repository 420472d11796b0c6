"""Random image changes that keep the class, in plain TensorFlow ops for a tf.data map.

Images come a batch at a time, float32 [batch, height, width, channels] with values 0-255,
and every image gets its own random draw. Working on whole batches makes one op per batch
instead of one per image: enough to keep the input ahead of the small MNIST models on a CPU.
"""

from __future__ import annotations

import math
from typing import Any

from trainer.keras_api import tf

# MNIST digits are centred by their centre of mass in a 20-pixel box: a 2-pixel shift and a
# 10-degree turn are what handwriting varies by, and keep every digit inside the frame.
MAX_SHIFT_PIXELS = 2.0
MAX_ROTATION_DEGREES = 10.0
# The flowers codelab: saturation anywhere from grey (0) to twice as vivid (2).
SATURATION_RANGE = (0.0, 2.0)


def flip_and_saturate(images: Any) -> Any:
    """The flowers codelab's augmentation: random left-right flip and saturation, per image."""
    images = tf.image.random_flip_left_right(images)
    factor = tf.random.uniform([tf.shape(images)[0], 1, 1], *SATURATION_RANGE)
    # Hue and saturation are ratios of the channel values and value is their maximum, so the
    # conversion works on 0-255 as on 0-1 images.
    hue, saturation, value = tf.unstack(tf.image.rgb_to_hsv(images), axis=-1)
    saturation = tf.clip_by_value(saturation * factor, 0.0, 1.0)
    images = tf.image.hsv_to_rgb(tf.stack([hue, saturation, value], axis=-1))
    return tf.clip_by_value(images, 0.0, 255.0)


def rotation_shift_transforms(angle: Any, dx: Any, dy: Any, height: int, width: int) -> Any:
    """Projective transforms [n, 8] that turn images by angle [n] (radians) about their
    centre, then move them by (dx, dy) [n] pixels; they map output pixels to input pixels."""
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    zero = tf.zeros_like(angle)
    rows = [cos, -sin, cx - cos * cx + sin * cy - dx, sin, cos, cy - sin * cx - cos * cy - dy]
    return tf.stack([*rows, zero, zero], axis=-1)


def shift_and_rotate(
    images: Any,
    max_degrees: float = MAX_ROTATION_DEGREES,
    max_shift: float = MAX_SHIFT_PIXELS,
) -> Any:
    """Turn each image by up to max_degrees and move it up to max_shift pixels each way."""
    count, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    limit = math.radians(max_degrees)
    angle = tf.random.uniform([count], -limit, limit)
    dx = tf.random.uniform([count], -max_shift, max_shift)
    dy = tf.random.uniform([count], -max_shift, max_shift)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=rotation_shift_transforms(angle, dx, dy, height, width),
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=tf.constant(0.0),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.ensure_shape(moved, images.shape)
