"""Random image changes that keep the class, in plain TensorFlow ops for a tf.data map.

Images come a batch at a time, float32 [batch, height, width, channels] with values 0-255,
and every image gets its own random draw. Working on whole batches makes one op per batch
instead of one per image, and every op here compiles with XLA: `augment_batch` runs each
augmentation as one compiled pass over the batch. On a CPU host the flowers augmentation
costs 0.13-0.23 of the CPU time of TensorFlow's own image ops applied image by image, and
the digits' bilinear resampling 0.78-0.80 of TensorFlow's transform op, which unlike it does not
compile for TPUs (bench/augment_cost.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from trainer.keras_api import tf

# MNIST digits are centred by their centre of mass in a 20-pixel box: a 2-pixel shift and a
# 10-degree turn are what handwriting varies by, and keep every digit inside the frame.
MAX_SHIFT_PIXELS = 2.0
MAX_ROTATION_DEGREES = 10.0
# The flowers codelab: saturation anywhere from grey (0) to twice as vivid (2).
SATURATION_RANGE = (0.0, 2.0)


def flip_and_saturate(images: Any) -> Any:
    """The flowers codelab's augmentation: random left-right flip and saturation, per image.

    Each image's flip is one select between the batch and its mirror image, which XLA
    compiles into a plain copy.
    """
    count = tf.shape(images)[0]
    flip = tf.random.uniform([count, 1, 1, 1]) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    factor = tf.random.uniform([count, 1, 1, 1], *SATURATION_RANGE)
    return scale_saturation(images, factor)


def scale_saturation(images: Any, factor: Any) -> Any:
    """Multiply the HSV saturation of RGB images by factor (clipped to 1), keeping hue and
    value, as an HSV round trip does, in a handful of element-wise ops.

    With value = max and saturation = (max - min) / max, moving every channel c to
    max - f * (max - c) keeps max and each (c - min) / (max - min), hence hue and value, and
    multiplies saturation by f; f is capped at max / (max - min), where saturation reaches 1.
    Works on 0-255 as on 0-1 images; factor has a 1 where images have their channels (one
    factor per image: [n, 1, 1, 1]). The channels are taken apart into three planes first:
    XLA's CPU code vectorises element-wise work along whole planes, not across the three
    values of one pixel.
    """
    red, green, blue = tf.unstack(images, axis=-1)
    high = tf.maximum(tf.maximum(red, green), blue)
    spread = high - tf.minimum(tf.minimum(red, green), blue)
    limit = tf.math.divide_no_nan(high, spread)  # 0 for greys, which have no saturation
    factor = tf.where(spread > 0, tf.minimum(factor[..., 0], limit), 0.0)
    planes = [tf.clip_by_value(high - factor * (high - c), 0.0, 255.0) for c in (red, green, blue)]
    return tf.stack(planes, axis=-1)


def rotation_shift_transforms(angle: Any, dx: Any, dy: Any, height: int, width: int) -> Any:
    """Projective transforms [n, 8] that turn images by angle [n] (radians) about their
    centre, then move them by (dx, dy) [n] pixels; they map output pixels to input pixels."""
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    zero = tf.zeros_like(angle)
    rows = [cos, -sin, cx - cos * cx + sin * cy - dx, sin, cos, cy - sin * cx - cos * cy - dy]
    return tf.stack([*rows, zero, zero], axis=-1)


def sample_bilinear(images: Any, transforms: Any) -> Any:
    """Resample images [n, h, w, c] through projective transforms [n, 8] (output pixel ->
    input pixel, as ImageProjectiveTransformV3 reads them; the last two must be 0) with
    bilinear interpolation and zeros outside the image, in ops that XLA compiles.

    One gather per output pixel instead of four: every cell of a copy of the image padded
    with two rows and columns of zeros holds its 2x2 block (itself, right, below, below
    right), and each output pixel reads the block at the top-left of its source point.
    Clamping that corner to the padding keeps the zeros exact: a block that starts two
    pixels or more outside the image lies wholly in the padding. On a CPU that cut the
    digits' training input from 22 to 15 CPU microseconds per image against four gathers
    of single pixels (bench/train_throughput.py, dense).
    """
    count = tf.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    ys, xs = tf.meshgrid(
        tf.range(height, dtype=images.dtype), tf.range(width, dtype=images.dtype), indexing="ij"
    )
    t = tf.cast(transforms, images.dtype)[:, :, None, None]
    source_x = t[:, 0] * xs + t[:, 1] * ys + t[:, 2]
    source_y = t[:, 3] * xs + t[:, 4] * ys + t[:, 5]
    left, top = tf.floor(source_x), tf.floor(source_y)
    padded = tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]])
    blocks = tf.concat(
        [padded[:, :-1, :-1], padded[:, :-1, 1:], padded[:, 1:, :-1], padded[:, 1:, 1:]], axis=-1
    )
    stride = width + 3  # cells per row of blocks
    flat = tf.reshape(blocks, [count, (height + 3) * stride, 4 * channels])
    row = tf.cast(tf.clip_by_value(top, -2.0, height), tf.int32) + 2
    col = tf.cast(tf.clip_by_value(left, -2.0, width), tf.int32) + 2
    index = tf.reshape(row * stride + col, [count, height * width])
    taps = tf.reshape(tf.gather(flat, index, batch_dims=1), [count, height, width, 4, channels])
    across = (source_x - left)[..., None]
    down = (source_y - top)[..., None]
    upper = taps[..., 0, :] * (1 - across) + taps[..., 1, :] * across
    lower = taps[..., 2, :] * (1 - across) + taps[..., 3, :] * across
    return upper * (1 - down) + lower * down


def random_turns_and_shifts(
    images: Any,
    max_degrees: float = MAX_ROTATION_DEGREES,
    max_shift: float = MAX_SHIFT_PIXELS,
) -> Any:
    """Projective transforms [n, 8], one per image: a turn of up to max_degrees and a move
    of up to max_shift pixels each way, drawn uniformly."""
    count, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    limit = math.radians(max_degrees)
    angle = tf.random.uniform([count], -limit, limit)
    dx = tf.random.uniform([count], -max_shift, max_shift)
    dy = tf.random.uniform([count], -max_shift, max_shift)
    return rotation_shift_transforms(angle, dx, dy, height, width)


def shift_and_rotate(
    images: Any,
    max_degrees: float = MAX_ROTATION_DEGREES,
    max_shift: float = MAX_SHIFT_PIXELS,
) -> Any:
    """Turn each image by up to max_degrees and move it up to max_shift pixels each way."""
    moved = sample_bilinear(images, random_turns_and_shifts(images, max_degrees, max_shift))
    return tf.ensure_shape(moved, images.shape)


def augment_batch(images: Any, colour: bool) -> Any:
    """A batch [n, h, w, c] of uint8 (or float) images, augmented, as float32 0-255: flips
    and saturation for colour photos, shifts and turns otherwise, in one XLA-compiled pass."""
    return _compiled(flip_and_saturate if colour else shift_and_rotate)(images)


@functools.cache
def _compiled(augment: Callable[[Any], Any]) -> Any:
    def cast_and_augment(images: Any) -> Any:
        return augment(tf.cast(images, tf.float32))

    return tf.function(cast_and_augment, jit_compile=True)
