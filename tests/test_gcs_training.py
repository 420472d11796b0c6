"""Training jobs against the emulated bucket: `python -m trainer.task` with gs:// everywhere.

The training runs the real entry point in a subprocess whose TensorFlow reaches fake-gcs-server
through the proxy of tests/gcs_emulator.py, with a fifth of the requests failing; the export
is then reloaded from gs:// here and predicts, as Vertex prediction would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gcs_emulator import GcsEmulator

from trainer.convert import main as convert
from trainer.datasets import DATASETS, DIGIT_CLASSES, FLOWER_CLASSES
from trainer.export import save_model
from trainer.keras_api import keras, tf

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_task(emulator: GcsEmulator, bucket: str, args: list[str]) -> subprocess.CompletedProcess:
    """python -m trainer.task with every output in the bucket, through the proxy."""
    outputs = [
        f"--model-dir={bucket}/model",
        f"--checkpoint-dir={bucket}/checkpoints",
        f"--tensorboard-dir={bucket}/logs",
    ]
    env = {**os.environ, **emulator.env, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "trainer.task", *args, *outputs, "--cpu", "--epochs", "1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )


def objects_under(bucket: str) -> set[str]:
    """Every object name in the bucket (listing through TensorFlow's client)."""
    found = set()
    for folder, _, files in tf.io.gfile.walk(bucket):
        found |= {f"{folder.rstrip('/')}/{name}"[len(bucket) + 1 :] for name in files}
    return found


def check_export(bucket: str) -> dict[str, object]:
    """The export is whole, in place, and nothing half-published is left beside it."""
    names = objects_under(bucket)
    for name in ("saved_model.pb", "variables/variables.index", "config.json", "history.json"):
        assert f"model/{name}" in names
    assert any(n.startswith("model/variables/variables.data-") for n in names)
    assert not [n for n in names if n.startswith(("model.partial-", "model.old-"))]
    return tf.saved_model.load(f"{bucket}/model").signatures["serving_default"]


def test_training_from_gs_with_20_percent_of_requests_failing(
    gcs_emulator: GcsEmulator, gcs_bucket: str
) -> None:
    """Shards converted into the bucket; checkpoints, logs and the export written to it."""
    data = f"{gcs_bucket}/data"
    convert(["synthetic", "flowers", data, "--count", "40", "--size", "32", "--per-shard", "8"])
    with gcs_emulator.faulty(fail_rate=0.2):  # half answered 503, half dropped connections
        run = run_task(
            gcs_emulator,
            gcs_bucket,
            ["--dataset", "flowers", f"--train-files={data}/flowers*.tfrec", "--image-size", "32"]
            + ["--steps-per-epoch", "2", "--batch-size", "8", "--shuffle-buffer", "16"],
        )
        assert run.returncode == 0, run.stderr[-3000:]
        serve = check_export(gcs_bucket)  # loaded through the faults too
        stats, written = gcs_emulator.stats, gcs_emulator.written
    assert stats["failed_503"] > 0 and stats["dropped"] > 0, stats

    bucket_name = gcs_bucket.removeprefix("gs://")
    # Backups went to the checkpoint dir during training (a finished run deletes them).
    assert any(w.startswith(f"{bucket_name}/checkpoints/") for w in written)
    events = [n for n in objects_under(gcs_bucket) if "/events.out.tfevents." in n]
    assert {n.split("/")[1] for n in events} >= {"train", "validation"}

    jpegs = [
        tf.train.Example.FromString(r.numpy()).features.feature["image"].bytes_list.value[0]
        for r in tf.data.TFRecordDataset(f"{data}/flowers00-8.tfrec").take(4)
    ]
    out = serve(image_bytes=tf.constant(jpegs))
    assert out["class_ids"].shape == (4,)
    assert {n.decode() for n in out["class_names"].numpy()} <= set(FLOWER_CLASSES)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, rtol=1e-4)


def test_mnist_export_to_gs_serves_pixels(gcs_bucket: str) -> None:
    """The MNIST signature (float pixels) saved to and reloaded from the bucket."""
    model = keras.Sequential(
        [keras.layers.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
        + [keras.layers.Softmax()]
    )
    path = f"{gcs_bucket}/mnist-model"
    save_model(model, DATASETS["mnist"], 28, path)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 28, 28)).astype(np.float32)
    out = serve(pixels=tf.constant(pixels))
    np.testing.assert_allclose(out["probabilities"].numpy(), model(pixels[..., None]), rtol=1e-4)
    assert [n.decode() for n in out["class_names"].numpy()] == [
        DIGIT_CLASSES[i] for i in out["class_ids"].numpy()
    ]
