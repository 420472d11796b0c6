"""CPU cost of the training augmentation, ours against TensorFlow's own ops, side by side.

Per augmentation, CPU microseconds per image of a tf.data map over batches of random uint8
images, with its batches taken inside one graph loop as `fit` takes them:
  flowers  ours (trainer/augment.py: flip by one select, saturation on colour planes, one
           XLA-compiled pass) against tf.image.random_flip_left_right and
           tf.image.random_saturation per image, the codelab's ops, mapped over the batch
  digits   ours (one gather of 2x2 blocks per pixel, XLA-compiled) against TensorFlow's
           ImageProjectiveTransformV3, the op behind Keras' RandomRotation and
           RandomTranslation, with the same random turns and shifts
Variants take turns in every round; each figure is the median over rounds, and each ratio the
median of the ratios within a round.

    nice -n 10 .venv/bin/python bench/augment_cost.py
    nice -n 10 .venv/bin/python bench/augment_cost.py --flowers-sizes 192 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(BENCH), BENCH]  # the package, and train_throughput beside this


def tf_flowers(images: Any) -> Any:
    """The codelab's flowers augmentation with TensorFlow's image ops, image by image."""
    from trainer.keras_api import tf

    def one(image: Any) -> Any:
        image = tf.image.random_flip_left_right(image)
        return tf.image.random_saturation(image / 255.0, 0.0, 2.0) * 255.0

    return tf.map_fn(one, tf.cast(images, tf.float32))


def tf_digits(images: Any) -> Any:
    """The same random turns and shifts as ours, through ImageProjectiveTransformV3."""
    from trainer.augment import random_turns_and_shifts
    from trainer.keras_api import tf

    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32),
        transforms=random_turns_and_shifts(images),
        output_shape=[images.shape[1], images.shape[2]],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def cpu_us_per_image(augment: Callable[[Any], Any], shape: tuple[int, ...], batches: int) -> float:
    """CPU microseconds per image of a parallel tf.data map of augment over uint8 batches."""
    import numpy as np
    from train_throughput import input_cost

    from trainer.keras_api import tf

    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    ds = tf.data.Dataset.from_tensors(pixels).repeat()
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    # The first batches trace, compile and start the map's threads: not timed.
    return input_cost(ds, skip=4, steps=batches, batch_size=shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flowers-sizes", type=int, nargs="*", default=[96, 192])
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (32)")
    parser.add_argument("--images", type=int, default=4096, help="images timed per figure")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of all variants (5)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from trainer.augment import augment_batch

    batch = args.batch_size
    cases: dict[str, tuple[tuple[int, ...], Callable[[Any], Any], Callable[[Any], Any]]] = {
        f"flowers {size}x{size}": (
            (batch, size, size, 3),
            lambda images: augment_batch(images, colour=True),
            tf_flowers,
        )
        for size in args.flowers_sizes
    }
    cases["digits 28x28"] = (
        (batch, 28, 28, 1),
        lambda images: augment_batch(images, colour=False),
        tf_digits,
    )
    figures: dict[str, dict[str, list[float]]] = {name: {"ours": [], "tf": []} for name in cases}
    for _ in range(args.rounds):
        for name, (shape, ours, theirs) in cases.items():
            for label, augment in (("ours", ours), ("tf", theirs)):
                figures[name][label].append(cpu_us_per_image(augment, shape, args.images // batch))
    print(
        f"CPU microseconds per image, batch {batch}, median of {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'augmentation':<18}{'ours':>10}{'TensorFlow ops':>16}{'ours/TF':>10}")
    for name, runs in figures.items():
        ratio = statistics.median(a / b for a, b in zip(runs["ours"], runs["tf"], strict=True))
        print(
            f"{name:<18}{statistics.median(runs['ours']):>10.1f}"
            f"{statistics.median(runs['tf']):>16.1f}{ratio:>10.2f}"
        )


if __name__ == "__main__":
    main()
