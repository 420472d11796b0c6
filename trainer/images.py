"""Image decoding and resizing, shared by the input pipeline, the converters and serving."""

from __future__ import annotations

from typing import Any

from trainer.keras_api import tf


def center_crop_square(image: Any) -> Any:
    """The largest centred square of an image [H, W, C]."""
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    top = (shape[0] - side) // 2
    left = (shape[1] - side) // 2
    return image[top : top + side, left : left + side, :]


def square_uint8(image: Any, size: int) -> Any:
    """Centre-crop to a square and resize to size x size; stays uint8 (cache-friendly)."""
    image = center_crop_square(image)
    image = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def decode_to_square(encoded: Any, size: int, channels: int = 3) -> Any:
    """JPEG or PNG bytes to a uint8 [size, size, channels] image, resized only when needed."""
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    shape = tf.shape(image)
    image = tf.cond(
        tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size)),
        lambda: image,
        lambda: square_uint8(image, size),
    )
    return tf.ensure_shape(image, [size, size, channels])
