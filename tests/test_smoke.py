"""The README's smoke job from a fresh process, and its model reloaded by another process."""

from __future__ import annotations

import subprocess
import sys

import pytest

PREDICT_DIGITS = """
import sys
import numpy as np
from trainer.export import load_serving
from trainer.synthetic import font_digits
images, labels = font_digits(64, seed=123)
out = load_serving(sys.argv[1])(pixels=images.astype(np.float32))
print(float(np.mean(out["class_ids"].numpy() == labels)))
print(out["probabilities"].shape, out["class_names"].numpy()[0].decode())
"""

PREDICT_FLOWERS = """
import sys
import numpy as np
from trainer.export import load_serving
from trainer.synthetic import flower_jpegs
items = list(flower_jpegs(40, size=150, seed=321))
out = load_serving(sys.argv[1])(image_bytes=np.array([jpeg for jpeg, _ in items], dtype=object))
print(float(np.mean(out["class_ids"].numpy() == np.array([c for _, c in items]))))
print(out["probabilities"].shape, out["class_names"].numpy()[0].decode())
"""


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.slow
def test_mnist_smoke_run_exports_a_model_another_process_uses(tmp_path) -> None:
    run = _run(["-m", "trainer.task", "--smoke", "--cpu", "--job-dir", str(tmp_path)])
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"model:       {tmp_path}/model" in run.stdout
    assert (tmp_path / "model" / "saved_model.pb").exists()
    assert (tmp_path / "smoke-data" / "train-images-idx3-ubyte").exists()
    reload = _run(["-c", PREDICT_DIGITS, str(tmp_path / "model")])
    assert reload.returncode == 0, reload.stderr[-3000:]
    accuracy, shapes = reload.stdout.strip().splitlines()[-2:]
    assert float(accuracy) > 0.6  # new digits the model never saw; chance is 0.1
    assert shapes.startswith("(64, 10)")


@pytest.mark.slow
def test_flowers_smoke_serves_jpeg_bytes_of_any_size(tmp_path) -> None:
    run = _run(
        ["-m", "trainer.task", "--smoke", "--cpu", "--dataset", "flowers"]
        + ["--job-dir", str(tmp_path)]
    )
    assert run.returncode == 0, run.stderr[-3000:]
    reload = _run(["-c", PREDICT_FLOWERS, str(tmp_path / "model")])
    assert reload.returncode == 0, reload.stderr[-3000:]
    accuracy, shapes = reload.stdout.strip().splitlines()[-2:]
    assert float(accuracy) > 0.3  # 150x150 JPEGs, centre-cropped and resized; chance is 0.2
    assert shapes.startswith("(40, 5)")
