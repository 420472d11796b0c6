"""From --distribution (and what the machine has) to a tf.distribute strategy."""

from __future__ import annotations

import json
import logging
from typing import Any

from trainer.config import Cluster, Config
from trainer.keras_api import tf

log = logging.getLogger(__name__)


def hide_accelerators() -> None:
    """--cpu: train on the CPU even where GPUs are present (before any op runs)."""
    tf.config.set_visible_devices([], "GPU")


def resolve_distribution(requested: str, cluster: Cluster, gpus: int, tpu_found: bool) -> str:
    """The strategy name `auto` stands for on this machine and cluster."""
    if requested != "auto":
        return requested
    if tpu_found:
        return "tpu"
    if cluster.worker_count > 1:
        return "multiworker"
    if gpus > 1:
        return "mirrored"
    if gpus == 1:
        return "one_device"
    return "cpu"


def cluster_resolver(cluster: Cluster) -> Any:
    """A resolver built from the config's cluster, not from the process environment."""
    spec = json.loads(cluster.tf_config)
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(spec["cluster"]),
        task_type=cluster.task_type,
        task_id=cluster.task_index,
        rpc_layer="grpc",
    )


def make_strategy(cfg: Config) -> Any:
    """The strategy for this run; logs what it chose and why."""
    if cfg.cpu:
        hide_accelerators()
    gpus = len(tf.config.list_physical_devices("GPU"))
    name = resolve_distribution(cfg.distribution, cfg.cluster, gpus, tpu_found=False)
    if name == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=cluster_resolver(cfg.cluster)
        )
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "one_device":
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    elif name == "cpu":
        strategy = tf.distribute.get_strategy()
    else:
        raise ValueError(f"distribution {name!r} is not available on this machine")
    log.info(
        "strategy %s (%s): %d replica(s), %d GPU(s) visible",
        name,
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
        gpus,
    )
    return strategy
