"""One run end to end in process: fit, hypertune report, export, reload in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_config
from trainer.keras_api import tf
from trainer.train import RunResult, train_and_evaluate


@pytest.fixture(scope="module")
def mnist_run(mnist_dir: str, tmp_path_factory) -> tuple[RunResult, str]:
    out = tmp_path_factory.mktemp("run")
    metrics = out / "hypertune" / "metrics"
    patch = pytest.MonkeyPatch()
    patch.setenv("CLOUD_ML_HP_METRIC_FILE", str(metrics))
    try:
        cfg = make_config(
            [
                "--data-dir",
                mnist_dir,
                "--job-dir",
                str(out),
                "--model",
                "conv",
                "--epochs",
                "2",
                "--learning-rate",
                "0.002",
            ]
            + ["--batch-size", "32", "--cpu"]
        )
        return train_and_evaluate(cfg), str(metrics)
    finally:
        patch.undo()


def test_hypertune_file_holds_the_metric_of_every_epoch_and_the_end(mnist_run) -> None:
    result, metrics_path = mnist_run
    lines = [json.loads(line) for line in Path(metrics_path).read_text().splitlines()]
    values = [float(line["val_accuracy"]) for line in lines]
    assert len(lines) == 3  # two epochs, then the end of training
    assert values[:2] == pytest.approx(result.history["val_accuracy"])
    assert values[2] == values[1]
    steps = [int(line["global_step"]) for line in lines]
    assert steps == [result.steps_per_epoch, 2 * result.steps_per_epoch, 2 * result.steps_per_epoch]


def test_training_learns_and_exports_next_to_its_config(mnist_run) -> None:
    result, _ = mnist_run
    assert result.history["val_accuracy"][-1] > 0.3  # 10 classes: chance is 0.1
    assert tf.io.gfile.exists(f"{result.model_dir}/saved_model.pb")
    config = json.loads(tf.io.gfile.GFile(f"{result.model_dir}/config.json").read())
    assert config["model"] == "conv" and config["epochs"] == 2


RELOAD = """
import sys, numpy as np
from trainer.export import load_serving
serve = load_serving(sys.argv[1])
out = serve(pixels=np.load(sys.argv[2]))
np.save(sys.argv[3], out["probabilities"].numpy())
print(",".join(n.decode() for n in out["class_names"].numpy()))
"""


def test_exported_model_predicts_like_the_trained_one_in_a_fresh_process(
    mnist_run, tmp_path
) -> None:
    result, _ = mnist_run
    from trainer.keras_api import tf as tf_

    images, _ = next(iter(result.data.eval_fn(tf_.distribute.InputContext())))
    pixels = images.numpy()[..., 0]
    np.save(tmp_path / "pixels.npy", pixels)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            RELOAD,
            result.model_dir,
            str(tmp_path / "pixels.npy"),
            str(tmp_path / "probs.npy"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    reloaded = np.load(tmp_path / "probs.npy")
    in_memory = result.model(images, training=False).numpy()
    np.testing.assert_allclose(reloaded, in_memory, atol=1e-5)
    names = out.stdout.strip().splitlines()[-1].split(",")
    assert names == [str(i) for i in in_memory.argmax(-1)]
