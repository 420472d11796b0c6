"""Preemption: a run killed (SIGKILL) or stopped (SIGTERM) resumes from its backup."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from tests.processes import Jobs
from trainer.callbacks import TrainingError
from trainer.preemption import RESTART_STATUS, StopRequest, backup_callback

STEPS = 120  # steps per epoch: an epoch lasts long enough that a kill lands inside the next


def _argv(mnist_dir: str, job_dir: Path, epochs: int, *extra: str) -> list[str]:
    return [
        "--data-dir", mnist_dir, "--job-dir", str(job_dir), "--model", "softmax",
        "--epochs", str(epochs), "--batch-size", "32", "--steps-per-epoch", str(STEPS), "--cpu",
        *extra,
    ]  # fmt: skip


def _backup_files(job_dir: Path) -> list[str]:
    folder = job_dir / "checkpoints"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _history(job_dir: Path) -> dict[str, list[float]]:
    return json.loads((job_dir / "model" / "history.json").read_text())


def _predicts(job_dir: Path) -> None:
    from trainer.export import load_serving

    out = load_serving(str(job_dir / "model"))(pixels=np.zeros((3, 28, 28), np.float32))
    assert out["probabilities"].shape == (3, 10)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_sigkill_after_epoch_2_relaunch_resumes_at_epoch_3(mnist_dir, tmp_path) -> None:
    job_dir = tmp_path / "job"
    argv = _argv(mnist_dir, job_dir, 4)
    with Jobs() as jobs:
        first = jobs.start(argv, name="first run")
        first.wait_for(r"backup saved after the end of epoch 2 ")
        first.signal(signal.SIGKILL)
        assert first.finish() == -signal.SIGKILL
        assert "chief/checkpoint" in _backup_files(job_dir)
        assert not (job_dir / "model").exists()

        again = jobs.start(argv, name="relaunch")
        assert again.finish() == 0, again.tail()
    assert "resuming at epoch 3 of 4 from the backup" in again.output
    assert "Epoch 1/4" not in again.output and "Epoch 3/4" in again.output
    assert len(_history(job_dir)["loss"]) == 2  # epochs 3 and 4: four in all
    assert _backup_files(job_dir) == []  # a finished run removes its backup
    _predicts(job_dir)


@pytest.mark.slow
def test_sigterm_saves_a_backup_that_the_relaunch_resumes_from(mnist_dir, tmp_path) -> None:
    job_dir = tmp_path / "job"
    argv = _argv(mnist_dir, job_dir, 3, "--backup-every-steps", "50")
    with Jobs() as jobs:
        first = jobs.start(argv, name="first run")
        first.wait_for(r"^Epoch 2/3")
        first.signal(signal.SIGTERM)
        assert first.finish() == RESTART_STATUS, first.tail()
        stop = first.wait_for(r"stopped by SIGTERM after step (\d+) of epoch (\d+)")
        step, epoch = int(stop[1]), int(stop[2])
        assert "chief/checkpoint" in _backup_files(job_dir)
        assert "backup saved after step 50 of epoch 1 (step 50)" in first.output

        again = jobs.start(argv, name="relaunch")
        assert again.finish() == 0, again.tail()
    if step == STEPS:  # the signal landed after the last step of the epoch
        assert f"resuming at epoch {epoch + 1} of 3 from" in again.output
    else:
        assert f"resuming at epoch {epoch} of 3, after its step {step}, from" in again.output
    assert len(_history(job_dir)["loss"]) == 3 - epoch + (step < STEPS)
    assert _backup_files(job_dir) == []
    _predicts(job_dir)


def test_sigterm_turns_into_a_stop_at_the_next_step_boundary() -> None:
    stop = StopRequest("chief:0", ["chief:0"])
    stop.start()
    try:
        assert not stop.due(7)
        os.kill(os.getpid(), signal.SIGTERM)  # the real signal: the handler only notes it
        assert stop.signalled
        assert stop.due(8)  # one worker alone saves after the step in progress
    finally:
        stop.close()
    assert signal.getsignal(signal.SIGTERM) is not stop._on_sigterm  # handler given back


def test_a_model_must_be_built_before_fit(mnist_dir) -> None:
    from tests.conftest import make_config
    from trainer.keras_api import keras

    cfg = make_config(["--data-dir", mnist_dir])
    model = keras.Sequential([keras.layers.Dense(3)])  # no input shape: not built
    callback = backup_callback(cfg, steps_per_epoch=10)
    callback.set_model(model)
    with pytest.raises(TrainingError, match="not built"):
        callback.on_train_begin()
