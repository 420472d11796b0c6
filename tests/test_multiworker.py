"""MultiWorkerMirroredStrategy for real: worker processes on 127.0.0.1, each with its own
TF_CONFIG, job dir, hypertune file and temp dir; one shared checkpoint dir, as on Vertex."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.processes import Job, Jobs, tf_configs
from trainer.preemption import RESTART_STATUS

pytestmark = pytest.mark.slow


def _start_cluster(
    jobs: Jobs, roles: Sequence[str], mnist_dir: str, root: Path, *extra: str
) -> list[Job]:
    started = []
    for index, tf_config in enumerate(tf_configs(roles)):
        task = root / f"task{index}"
        (task / "tmp").mkdir(parents=True, exist_ok=True)
        argv = [
            "--data-dir", mnist_dir, "--job-dir", str(task), "--model", "softmax",
            "--batch-size", "32", "--checkpoint-dir", str(root / "checkpoints"), "--cpu",
            *extra,
        ]  # fmt: skip
        env = {
            "TF_CONFIG": tf_config,
            "CLOUD_ML_HP_METRIC_FILE": str(task / "hypertune" / "metrics"),
            "TMPDIR": str(task / "tmp"),  # where a worker's scratch folders would be left
        }
        started.append(jobs.start(argv, env=env, name=f"{roles[index]} (task{index})"))
    return started


def _check_only_the_chief_wrote(root: Path, epochs: int) -> None:
    chief, worker = root / "task0", root / "task1"
    assert (chief / "model" / "saved_model.pb").is_file()
    assert not (worker / "model").exists() and not (worker / "logs").exists()
    assert list((worker / "tmp").iterdir()) == []  # scratch model, logs and backups removed
    lines = (chief / "hypertune" / "metrics").read_text().splitlines()
    assert len(lines) >= epochs + 1 and "val_accuracy" in lines[-1]
    assert not (worker / "hypertune").exists()  # the hypertune file is the chief's alone
    leftovers = [p for p in (root / "checkpoints").rglob("*") if p.is_file()]
    assert leftovers == []  # the finished job removed its backup; no worker temp dirs


def test_two_workers_train_and_only_worker_0_exports(mnist_dir, tmp_path) -> None:
    with Jobs() as jobs:
        cluster = _start_cluster(jobs, ["worker", "worker"], mnist_dir, tmp_path, "--epochs", "2")
        statuses = [job.finish() for job in cluster]
    assert statuses == [0, 0], "\n\n".join(job.tail() for job in cluster)
    for job in cluster:
        assert "strategy multiworker (CollectiveAllReduceStrategy) on cpu: 2 replica(s)" in (
            job.output
        )
        assert "batch 32 = 16 per replica x 2" in job.output
    assert "(chief)" in cluster[0].output and "(not chief)" in cluster[1].output
    _check_only_the_chief_wrote(tmp_path, epochs=2)


def test_chief_and_worker_stop_together_on_sigterm_and_resume(mnist_dir, tmp_path) -> None:
    extra = ("--epochs", "3", "--steps-per-epoch", "60")
    with Jobs() as jobs:
        first = _start_cluster(jobs, ["chief", "worker"], mnist_dir, tmp_path, *extra)
        first[1].wait_for(r"^Epoch 2/3")
        first[1].signal(signal.SIGTERM)  # the worker's VM is reclaimed
        statuses = [job.finish() for job in first]
        assert statuses == [RESTART_STATUS] * 2, "\n\n".join(job.tail() for job in first)
        stops = [job.wait_for(r"after step (\d+) of epoch (\d+)").groups() for job in first]
        assert stops[0] == stops[1]  # both saved after the same step
        assert "stopped by a peer's SIGTERM" in first[0].output
        backups = [p.name for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()]
        assert "checkpoint" in backups and not any("workertemp" in b for b in backups)

        again = _start_cluster(jobs, ["chief", "worker"], mnist_dir, tmp_path, *extra)
        statuses = [job.finish() for job in again]
    assert statuses == [0, 0], "\n\n".join(job.tail() for job in again)
    step, epoch = (int(n) for n in stops[0])
    for job in again:
        assert f"resuming at epoch {epoch}" in job.output or (
            step == 60 and f"resuming at epoch {epoch + 1}" in job.output
        )
    _check_only_the_chief_wrote(tmp_path, epochs=1)
