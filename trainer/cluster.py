"""Who writes what in a multi-worker job.

Every worker of MultiWorkerMirroredStrategy must take part in saves (reading batch-norm
statistics and metrics is a collective), but only the chief owns --model-dir and the
TensorBoard dir. The other workers write the same files into a scratch folder of their own
on local disk, removed when the run ends, however it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator

from trainer.config import Cluster, Config

log = logging.getLogger(__name__)

TRAINING_ROLES = ("chief", "master", "worker")
SCRATCH_PREFIX = "trainer-scratch-"


def task_id(task_type: str, task_index: int) -> str:
    """A task's name in logs and coordination keys, e.g. `worker:1`."""
    return f"{task_type}:{task_index}"


def training_tasks(cluster: Cluster) -> list[str]:
    """Every task that trains (chief, master, workers), as `type:index`, chief first."""
    spec = json.loads(cluster.tf_config or "{}").get("cluster", {})
    tasks = [
        task_id(role, index) for role in TRAINING_ROLES for index in range(len(spec.get(role, [])))
    ]
    return tasks or [task_id(cluster.task_type, cluster.task_index)]


def scratch_dir(cluster: Cluster) -> str:
    """A fresh local folder for a non-chief worker's copies of the chief's outputs."""
    label = f"{cluster.task_type}{cluster.task_index}-"
    return tempfile.mkdtemp(prefix=SCRATCH_PREFIX + label)


@contextlib.contextmanager
def worker_outputs(cfg: Config) -> Iterator[Config]:
    """The config this worker runs with: the chief's unchanged, others' outputs in scratch."""
    if cfg.cluster.is_chief:
        yield cfg
        return
    scratch = scratch_dir(cfg.cluster)
    log.info(
        "task %s is not the chief: its model and TensorBoard copies go to %s (removed at the end)",
        task_id(cfg.cluster.task_type, cfg.cluster.task_index),
        scratch,
    )
    try:
        yield dataclasses.replace(
            cfg, model_dir=f"{scratch}/model", tensorboard_dir=f"{scratch}/logs"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
