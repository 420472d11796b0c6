"""From --distribution (and what the machine has) to a tf.distribute strategy.

    auto         a TPU if one is attached (or --tpu names one), else MultiWorkerMirrored when
                 the cluster has several training tasks, else Mirrored over the local GPUs,
                 else the default (CPU) strategy
    tpu          TPUClusterResolver(tpu=--tpu), connect (remote TPUs only), initialize, TPUStrategy
    mirrored     MirroredStrategy over the local GPUs, or over the logical CPUs when there are
                 no GPUs (how tests and bench/scaling.py run it on one CPU)
    multiworker  MultiWorkerMirroredStrategy over the cluster of TF_CONFIG / CLUSTER_SPEC
    one_device   OneDeviceStrategy on the first GPU (or the CPU)
    cpu          the default strategy, accelerators hidden

After the strategy exists, `settle_config` fills in what depends on the device: the resolved
distribution name, steps per execution (32 on TPU), the learning rate scaled with the batch.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import json
import logging
from collections.abc import Sequence
from typing import Any

from trainer import accelerators
from trainer.config import Cluster, Config
from trainer.keras_api import tf
from trainer.recipes import recipe_for

log = logging.getLogger(__name__)

LOCAL_TPU = "local"  # --tpu on Vertex TPU VMs: the TPU chips are attached to this host
TPU_IO_DEVICE = "/job:localhost"  # where TPU jobs read and write files (checkpoints, exports)
# Device files of TPU chips on a TPU VM: /dev/accel* (v2-v4), /dev/vfio/N (v5e, v5p, v6e).
TPU_DEVICE_GLOBS = ("/dev/accel[0-9]*", "/dev/vfio/[0-9]*")


class StrategyError(ValueError):
    """A --distribution that cannot run on this machine or cluster; the message says why."""


# ---------------------------------------------------------------------------- choosing


def is_local_tpu(tpu: str) -> bool:
    """True for a TPU attached to this host (TPU VMs); False for a TPU node named or addressed."""
    return tpu.strip() in ("", LOCAL_TPU)


def tpu_attached(device_files: Sequence[str], libtpu_installed: bool) -> bool:
    """A TPU VM: TPU device files exist and the TPU runtime is installed.

    Looking at files answers at once; asking TensorFlow or the metadata server can block for
    seconds (or hang) on machines without TPUs.
    """
    return libtpu_installed and bool(device_files)


def detect_tpu(tpu: str) -> bool:
    """Whether `auto` should use a TPU: --tpu names a remote one, or one is attached here."""
    if not is_local_tpu(tpu):
        return True
    files = [path for pattern in TPU_DEVICE_GLOBS for path in glob.glob(pattern)]
    return tpu_attached(files, importlib.util.find_spec("libtpu") is not None)


def resolve_distribution(requested: str, cluster: Cluster, gpus: int, tpu_found: bool) -> str:
    """The strategy name `auto` stands for on this machine and cluster."""
    if requested != "auto":
        return requested
    if tpu_found:
        return "tpu"
    if cluster.worker_count > 1:
        return "multiworker"
    if gpus:
        # Mirrored even on one GPU: the same code path as on several, and BackupAndRestore
        # supports it (tf-keras's does not support OneDeviceStrategy).
        return "mirrored"
    return "cpu"


def check_distribution(name: str, cpu_only: bool, cluster: Cluster) -> None:
    """Fail fast on combinations that cannot work, before any device is touched."""
    if cpu_only and name == "tpu":
        raise StrategyError("--cpu hides accelerators, but --distribution tpu needs a TPU")
    if name == "tpu" and cluster.worker_count > 1:
        raise StrategyError(
            "--distribution tpu runs on one TPU host; the cluster spec lists "
            f"{cluster.worker_count} training tasks (use one replica with a TPU)"
        )


def mirrored_devices(gpus: Sequence[str], cpus: Sequence[str]) -> list[str] | None:
    """Devices for MirroredStrategy: None (all GPUs) when there are GPUs, else 2+ logical CPUs."""
    if gpus:
        return None
    if len(cpus) > 1:
        return list(cpus)
    return None


def tpu_resolver_args(tpu: str) -> dict[str, str]:
    """TPUClusterResolver arguments: `local` on TPU VMs, else the name or grpc:// address."""
    return {"tpu": LOCAL_TPU if is_local_tpu(tpu) else tpu.strip()}


# ---------------------------------------------------------------------------- building


def hide_accelerators() -> None:
    """--cpu: train on the CPU even where GPUs are present (before any op runs)."""
    tf.config.set_visible_devices([], "GPU")


def split_cpu(count: int) -> None:
    """Make `count` logical CPU devices, so Mirrored can run several replicas without GPUs.

    For tests and bench/scaling.py; must run before TensorFlow initializes its devices.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def cluster_resolver(cluster: Cluster) -> Any:
    """A resolver built from the config's cluster, not from the process environment."""
    spec = json.loads(cluster.tf_config)
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(spec["cluster"]),
        task_type=cluster.task_type,
        task_id=cluster.task_index,
        rpc_layer="grpc",
    )


def tpu_strategy(tpu: str, api: Any = None) -> Any:
    """Resolve, connect (remote TPUs only), initialize the TPU system, return a TPUStrategy."""
    api = api or tf
    resolver = api.distribute.cluster_resolver.TPUClusterResolver(**tpu_resolver_args(tpu))
    if not is_local_tpu(tpu):
        # A TPU node is another machine: its gRPC server runs the graph. On a TPU VM the
        # chips are local and there is nothing to connect to.
        api.config.experimental_connect_to_cluster(resolver)
    api.tpu.experimental.initialize_tpu_system(resolver)
    return api.distribute.TPUStrategy(resolver)


def connect_tpu(tpu: str) -> Any:
    """`tpu_strategy`, with a message that names the TPU when there is none to reach."""
    try:
        return tpu_strategy(tpu)
    except (tf.errors.OpError, ValueError, RuntimeError) as err:
        detail = getattr(err, "message", str(err)).strip().splitlines()[0][:200]
        raise StrategyError(
            f"--distribution tpu: no TPU reachable at --tpu {tpu} ({detail}); on Vertex use a "
            "TPU machine type with the TPU container, on TPU nodes pass the node's name"
        ) from err


def make_strategy(cfg: Config) -> Any:
    """The strategy for this run; logs what it chose and why."""
    if cfg.cpu or cfg.distribution == "cpu":
        hide_accelerators()
    gpus = tf.config.list_physical_devices("GPU")
    tpu_found = False if cfg.cpu else detect_tpu(cfg.tpu)
    name = resolve_distribution(cfg.distribution, cfg.cluster, len(gpus), tpu_found)
    check_distribution(name, cfg.cpu, cfg.cluster)
    if name == "tpu":
        strategy = connect_tpu(cfg.tpu)
    elif name == "multiworker":
        # Without a cluster this is MultiWorkerMirrored in local mode: all local devices.
        resolver = cluster_resolver(cfg.cluster) if cfg.cluster.tf_config else None
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    elif name == "mirrored":
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=mirrored_devices(gpus, cpus))
    elif name == "one_device":
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    elif name == "cpu":
        strategy = tf.distribute.get_strategy()
    else:
        raise StrategyError(f"unknown --distribution {name!r}")
    log.info(
        "strategy %s (%s) on %s: %d replica(s); %d GPU(s) visible; task %s %d of %d (%s)",
        name,
        type(strategy).__name__,
        accelerators.device_kind(strategy),
        strategy.num_replicas_in_sync,
        len(gpus),
        cfg.cluster.task_type,
        cfg.cluster.task_index,
        cfg.cluster.worker_count,
        "chief" if cfg.cluster.is_chief else "not chief",
    )
    return strategy


# ---------------------------------------------------------------------------- what it runs on


def distribution_name(strategy: Any) -> str:
    """The --distribution value a strategy stands for (the resolved `auto`)."""
    names = {
        "TPUStrategy": "tpu",
        "TPUStrategyV2": "tpu",
        "CollectiveAllReduceStrategy": "multiworker",
        "MultiWorkerMirroredStrategy": "multiworker",
        "MirroredStrategy": "mirrored",
        "OneDeviceStrategy": "one_device",
    }
    return names.get(type(strategy).__name__, "cpu")


def io_device(kind: str) -> str | None:
    """The device that writes checkpoints and exports: the host's, on TPU; TF's choice elsewhere."""
    return TPU_IO_DEVICE if kind == "tpu" else None


def learning_rate_scale(batch_size: int, recipe_batch_size: int) -> float:
    """The linear scaling rule: a k times larger batch takes k times larger steps."""
    return batch_size / recipe_batch_size


def scale_learning_rates(cfg: Config) -> Config:
    """--scale-lr-with-batch: the whole schedule (start, peak, floor) times batch / recipe batch."""
    if not cfg.scale_lr_with_batch:
        return cfg
    recipe_batch = recipe_for(cfg.dataset, cfg.model, cfg.smoke)["batch_size"]
    scale = learning_rate_scale(cfg.batch_size, recipe_batch)
    log.info(
        "learning rate scaled with the batch: %d / %d = x%g: %g -> %g",
        cfg.batch_size,
        recipe_batch,
        scale,
        cfg.learning_rate,
        cfg.learning_rate * scale,
    )
    return dataclasses.replace(
        cfg,
        learning_rate=cfg.learning_rate * scale,
        lr_max=cfg.lr_max * scale,
        min_learning_rate=cfg.min_learning_rate * scale,
        scale_lr_with_batch=False,  # applied: the written config holds the rates used
    )


def evaluation_steps(cfg: Config, eval_count: int) -> int:
    """Validation steps that read every evaluation record once (Keras needs the number when
    the dataset is distributed).

    Each input pipeline (one per worker) reads its share of the records in batches of its
    share of the global batch; the largest share decides. TPUs drop the last partial batch.
    """
    if cfg.eval_steps:
        return cfg.eval_steps
    pipelines = cfg.cluster.worker_count if cfg.distribution == "multiworker" else 1
    share = -(-eval_count // pipelines)
    batch = cfg.batch_size // pipelines
    steps = share // batch if cfg.distribution == "tpu" else -(-share // batch)
    if steps < 1:
        raise StrategyError(
            f"{eval_count} evaluation records make no full batch of {cfg.batch_size} on TPU; "
            "lower --batch-size or add evaluation data"
        )
    return steps


def settle_config(cfg: Config, distribution: str, kind: str, replicas: int) -> Config:
    """The config with what depends on the strategy filled in, as the rest of the run uses it.

    The written config then says what ran: the distribution `auto` chose, the steps per
    execution of the device kind (32 on TPU), the learning rates after batch scaling.
    """
    cfg = dataclasses.replace(
        cfg,
        distribution=distribution,
        steps_per_execution=accelerators.steps_per_execution(cfg.steps_per_execution, kind),
    )
    per_replica = cfg.batch_size // max(1, replicas)
    if kind == "tpu" and per_replica % 8:
        log.warning(
            "per-replica batch %d: TPU cores run best on multiples of 8 (128 fills the MXU)",
            per_replica,
        )
    return scale_learning_rates(cfg)


def settle_for_strategy(cfg: Config, strategy: Any) -> Config:
    """`settle_config` for the strategy this run made."""
    return settle_config(
        cfg,
        distribution_name(strategy),
        accelerators.device_kind(strategy),
        strategy.num_replicas_in_sync,
    )
