"""Our default MNIST recipe against the codelab's, on real handwritten digits, side by side.

Real MNIST cannot be downloaded everywhere; scikit-learn ships 1,797 real handwritten digits
(8x8, 16 grey levels, from the UCI "optdigits" set). They are upscaled to MNIST's format (the
digit in a 20x20 box centred in 28x28, white on black, 0-255), split stratified into training
and held-out digits, and written as the four IDX files the trainer reads. Each seed trains the
codelab's recipe and ours, alternating which goes first, through the real training code
(flags -> config -> train_and_evaluate), and the script prints held-out accuracy and fit wall
time per run, then medians and the wall-time ratio.

    nice -n 10 .venv/bin/python bench/mnist_recipe.py --seeds 5

Extra candidates can be compared too: --candidate "name=--flag value --flag value".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shlex
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The codelab's batch-norm convnet recipe (keras_04_mnist_batch_norm), every value explicit.
CODELAB = (
    "--model bn_conv --batch-size 64 --optimizer adam --learning-rate 0.01 --lr-decay 0.666 "
    "--min-learning-rate 0 --lr-schedule exponential --epochs 10 --dropout 0.3 "
    "--bn-momentum 0.99 --augment false --label-smoothing 0"
)
OURS = "--model bn_conv"  # nothing but the model: the recipe defaults of trainer/recipes.py


def mnist_style(images: np.ndarray) -> np.ndarray:
    """8x8 digits with values 0-16 -> uint8 28x28 MNIST-style digits."""
    from PIL import Image

    out = np.zeros((len(images), 28, 28), np.uint8)
    for i, image in enumerate(images):
        pixels = Image.fromarray((image * (255.0 / 16.0)).astype(np.float32), mode="F")
        box = np.asarray(pixels.resize((20, 20), Image.BICUBIC), np.float32)
        out[i, 4:24, 4:24] = np.clip(box, 0, 255).astype(np.uint8)
    return out


def write_digits(folder: str, held_out: int, seed: int) -> tuple[int, int]:
    """The scikit-learn digits as MNIST IDX files in folder: (training, held-out) counts."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from trainer.datasets import MNIST_IDX_FILES
    from trainer.records import write_idx

    digits = load_digits()
    images = mnist_style(digits.images)
    x_train, x_eval, y_train, y_eval = train_test_split(
        images, digits.target, test_size=held_out, stratify=digits.target, random_state=seed
    )
    for split, (x, y) in (("train", (x_train, y_train)), ("eval", (x_eval, y_eval))):
        for name, array in zip(MNIST_IDX_FILES[split], (x, y.astype(np.uint8)), strict=True):
            write_idx(os.path.join(folder, name), array)
    return len(y_train), len(y_eval)


def train_once(data_dir: str, flags: str, seed: int, out: str) -> dict[str, Any]:
    """One run through the real trainer; held-out accuracy per epoch and fit wall time."""
    from trainer.config import build_config
    from trainer.flags import parse_flags
    from trainer.keras_api import keras
    from trainer.train import train_and_evaluate

    keras.backend.clear_session()
    argv = ["--data-dir", data_dir, "--job-dir", out, "--cpu", "--seed", str(seed)]
    cfg = build_config(parse_flags(argv + shlex.split(flags)), {})
    started, cpu_started = time.perf_counter(), time.process_time()
    quiet = io.StringIO()  # Keras' epoch lines and the run summary
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        result = train_and_evaluate(cfg)
    return {
        "val_accuracy": result.history["val_accuracy"],
        "fit_s": result.timings["fit_s"],
        "run_s": time.perf_counter() - started,
        # CPU seconds of the whole run (fit, export, report): unlike wall time, barely moved
        # by other processes on a shared machine.
        "cpu_s": time.process_time() - cpu_started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="runs per recipe")
    parser.add_argument("--held-out", type=int, default=500, help="held-out digits")
    parser.add_argument("--candidate", action="append", default=[], help="name=flags")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    recipes = {"codelab": CODELAB, "ours": OURS}
    for item in args.candidate:
        name, flags = item.split("=", 1)
        recipes[name] = flags

    work = tempfile.mkdtemp(prefix="mnist-recipe-")
    train_count, eval_count = write_digits(work, args.held_out, seed=0)
    print(f"scikit-learn digits: {train_count} training, {eval_count} held out ({work})")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in recipes}
    names = list(recipes)
    for seed in range(args.seeds):
        order = names[seed % len(names) :] + names[: seed % len(names)]  # alternate who goes first
        for name in order:
            run = train_once(work, recipes[name], seed, os.path.join(work, f"{name}-{seed}"))
            results[name].append(run)
            curve = " ".join(f"{v:.3f}" for v in run["val_accuracy"])
            print(
                f"seed {seed} {name:>10}: final {run['val_accuracy'][-1]:.4f} "
                f"fit {run['fit_s']:.1f}s cpu {run['cpu_s']:.1f}s  epochs [{curve}]",
                flush=True,
            )

    print("\nrecipe     median final  min final  median fit_s  fit / codelab  cpu / codelab")
    codelab = results["codelab"]
    for name, runs in results.items():
        finals = [r["val_accuracy"][-1] for r in runs]
        fit = statistics.median(r["fit_s"] for r in runs)
        # Paired by seed: both runs of a seed ran back to back, under the same machine load.
        pairs = list(zip(runs, codelab, strict=True))
        fit_ratio = statistics.median(r["fit_s"] / c["fit_s"] for r, c in pairs)
        cpu_ratio = statistics.median(r["cpu_s"] / c["cpu_s"] for r, c in pairs)
        print(
            f"{name:<10} {statistics.median(finals):>12.4f} {min(finals):>10.4f} "
            f"{fit:>13.1f} {fit_ratio:>14.2f} {cpu_ratio:>14.2f}"
        )
    for name, flags in recipes.items():
        print(f"{name}: {flags}")


if __name__ == "__main__":
    main()
