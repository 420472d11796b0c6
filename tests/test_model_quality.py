"""The squeezenet learns the synthetic flowers: the whole run (pipeline, labels, model,
schedule, export) is wired right when held-out accuracy and the exported model agree."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_config
from trainer.export import load_serving
from trainer.keras_api import tf
from trainer.train import train_and_evaluate

SIZE = 64


@pytest.fixture(scope="module")
def flower_files(tmp_path_factory) -> tuple[str, str]:
    """240 training flowers in four shards and 60 held-out ones, in separate folders."""
    from trainer.synthetic import write_flower_shards

    root = tmp_path_factory.mktemp("flowers-quality")
    (root / "train").mkdir()
    (root / "eval").mkdir()
    write_flower_shards(str(root / "train"), 240, 4, size=SIZE, seed=11)
    write_flower_shards(str(root / "eval"), 60, 1, size=SIZE, seed=12)
    return str(root / "train" / "*.tfrec"), str(root / "eval" / "*.tfrec")


def test_squeezenet_reaches_095_held_out_and_its_export_agrees(flower_files, tmp_path) -> None:
    train, held_out = flower_files
    cfg = make_config(
        ["--dataset", "flowers", "--train-files", train, "--eval-files", held_out, "--cpu"]
        + ["--model", "squeezenet", "--image-size", str(SIZE), "--batch-size", "16"]
        + ["--epochs", "8", "--steps-per-epoch", "10", "--job-dir", str(tmp_path)]
    )
    assert cfg.bn_momentum == 0.9 and cfg.augment  # the squeezenet recipe
    result = train_and_evaluate(cfg)
    assert result.history["val_accuracy"][-1] >= 0.95

    images, labels = [], []
    for batch_images, batch_labels in result.data.eval_fn(tf.distribute.InputContext()):
        images.append(batch_images.numpy())
        labels.append(np.argmax(batch_labels.numpy(), -1))
    images, labels = np.concatenate(images), np.concatenate(labels)
    jpegs = [tf.io.encode_jpeg(image.astype(np.uint8), quality=95) for image in images]
    out = load_serving(result.model_dir)(image_bytes=tf.stack(jpegs))
    exported = float(np.mean(out["class_ids"].numpy() == labels))
    assert len(labels) == 60
    assert exported >= 0.95
    assert exported == pytest.approx(result.history["val_accuracy"][-1], abs=0.05)
