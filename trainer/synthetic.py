"""Generated datasets for smoke runs, tests and benchmarks: no network, no files needed.

MNIST: digits rendered from the fonts that matplotlib ships, shifted, rotated, thickened and
noised, like the codelab's font digits. Flowers: five visually distinct kinds of synthetic
flower on a leafy background, encoded as JPEG. Both are written in the real formats (IDX files,
TFRecord shards), so a smoke run exercises the same readers as a real one.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from trainer.datasets import FLOWER_CLASSES, MNIST_IDX_FILES
from trainer.keras_api import tf
from trainer.records import (
    SCHEMA_FLOWERS_V1,
    flowers_example,
    flowers_example_v1,
    write_idx,
    write_tfrecord,
)

_FONT_PREFIXES = ("DejaVuSans", "DejaVuSerif", "STIXGeneral", "cmr10", "cmss10", "cmtt10", "cmb10")


def digit_fonts() -> list[str]:
    """Paths of the TrueType fonts bundled with matplotlib that draw plain digits."""
    import matplotlib

    folder = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")
    return sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.endswith(".ttf") and name.startswith(_FONT_PREFIXES) and "Display" not in name
    )


def _render_digit(digit: int, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> np.ndarray:
    """One 28x28 white-on-black digit, fitted to a 20-pixel box as MNIST is."""
    canvas = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(canvas).text((20, 8), str(digit), fill=255, font=font)
    canvas = canvas.rotate(rng.uniform(-12, 12), resample=Image.BILINEAR)
    if rng.random() < 0.5:
        canvas = canvas.filter(ImageFilter.MaxFilter(3))  # thicker strokes, like pen digits
    box = canvas.getbbox() or (0, 0, 96, 96)
    glyph = canvas.crop(box)
    scale = rng.uniform(16, 21) / max(glyph.size)
    glyph = glyph.resize(
        (max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale))),
        Image.LANCZOS,
    )
    out = Image.new("L", (28, 28), 0)
    left = (28 - glyph.size[0]) // 2 + int(rng.integers(-2, 3))
    top = (28 - glyph.size[1]) // 2 + int(rng.integers(-2, 3))
    out.paste(glyph, (left, top))
    pixels = np.asarray(out, dtype=np.float32)
    pixels += rng.normal(0, 12, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def font_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [count, 28, 28], labels uint8 [count]) with balanced classes."""
    rng = np.random.default_rng(seed)
    fonts = [ImageFont.truetype(path, 64) for path in digit_fonts()]
    labels = (np.arange(count) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = np.stack([_render_digit(int(d), fonts[rng.integers(len(fonts))], rng) for d in labels])
    return images, labels


# Per class: petal colour, centre colour, petal count, petal length and width as fractions.
_FLOWER_LOOKS = {
    "daisy": ((245, 245, 240), (240, 200, 40), 14, 0.42, 0.10),
    "dandelion": ((250, 215, 30), (235, 180, 20), 40, 0.36, 0.04),
    "roses": ((200, 20, 50), (120, 0, 25), 7, 0.30, 0.22),
    "sunflowers": ((255, 190, 0), (90, 50, 15), 20, 0.46, 0.09),
    "tulips": ((235, 80, 170), (170, 40, 120), 3, 0.40, 0.20),
}


def _flower_image(class_id: int, size: int, rng: np.random.Generator) -> Image.Image:
    """A synthetic flower of a class on a random leafy background."""
    base = np.array([30, 90, 30]) + rng.integers(-20, 20, 3)
    noise = rng.normal(0, 18, (size // 8, size // 8, 3))
    background = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(background).resize((size, size), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    petal, centre, petals, length, width = _FLOWER_LOOKS[FLOWER_CLASSES[class_id]]
    scale = size * rng.uniform(0.7, 1.0)
    cx, cy = (size / 2 + rng.uniform(-0.12, 0.12) * size for _ in range(2))
    jitter = rng.integers(-25, 25, 3)
    colour = tuple(int(c) for c in np.clip(np.array(petal) + jitter, 0, 255))
    turn = rng.uniform(0, 2 * np.pi)
    for k in range(petals):
        angle = turn + 2 * np.pi * k / petals
        tip = (cx + np.cos(angle) * length * scale, cy + np.sin(angle) * length * scale)
        draw.line([(cx, cy), tip], fill=colour, width=max(2, int(width * scale)))
    radius = scale * (0.16 if class_id == 3 else 0.09)
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=centre)
    return image


def flower_jpegs(count: int, size: int = 192, seed: int = 0) -> Iterator[tuple[bytes, int]]:
    """(JPEG bytes, class id) pairs with balanced classes, in a shuffled order."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(FLOWER_CLASSES)
    rng.shuffle(labels)
    for class_id in labels:
        buffer = io.BytesIO()
        _flower_image(int(class_id), size, rng).save(buffer, format="JPEG", quality=90)
        yield buffer.getvalue(), int(class_id)


def write_mnist_idx(folder: str, train_count: int, eval_count: int, seed: int = 0) -> list[str]:
    """The four MNIST IDX files of font digits in folder (local or gs://)."""
    paths = []
    for split, count, split_seed in (("train", train_count, seed), ("eval", eval_count, seed + 1)):
        images, labels = font_digits(count, split_seed)
        for name, array in zip(MNIST_IDX_FILES[split], (images, labels), strict=True):
            path = f"{folder.rstrip('/')}/{name}"
            write_idx(path, array)
            paths.append(path)
    return paths


def write_flower_shards(
    folder: str,
    count: int,
    shards: int,
    size: int = 192,
    seed: int = 0,
    schema: str = "tfrecords-jpeg-192x192-2",
) -> list[str]:
    """Synthetic flowers as TFRecord shards named like the public ones (flowers00-230.tfrec)."""

    tf.io.gfile.makedirs(folder)
    items = list(flower_jpegs(count, size, seed))
    paths = []
    for shard, chunk in enumerate(np.array_split(np.arange(count), shards)):
        records = []
        for i in chunk:
            jpeg, class_id = items[i]
            if schema == SCHEMA_FLOWERS_V1:
                records.append(flowers_example_v1(jpeg, class_id, FLOWER_CLASSES))
            else:
                records.append(flowers_example(jpeg, class_id, FLOWER_CLASSES, (size, size)))
        path = f"{folder.rstrip('/')}/flowers{shard:02d}-{len(records)}.tfrec"
        write_tfrecord(path, records)
        paths.append(path)
    return paths


# Smoke sizes: enough to learn something in a few seconds per epoch on two cores.
SMOKE_SIZES = {"mnist": (3000, 600), "flowers": (600, 6)}


def make_smoke_data(dataset: str, folder: str, seed: int = 0) -> list[str]:
    """Write a smoke dataset into folder; returns the files written."""
    tf.io.gfile.makedirs(folder)
    if dataset == "mnist":
        train, evaluation = SMOKE_SIZES["mnist"]
        return write_mnist_idx(folder, train, evaluation, seed)
    count, shards = SMOKE_SIZES["flowers"]
    return write_flower_shards(folder, count, shards, size=192, seed=seed)
