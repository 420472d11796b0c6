"""Flags plus the Vertex environment, resolved into one frozen config.

This is the only place that reads `os.environ`: Vertex's AIP_* output folders, the cluster
(TF_CONFIG, or Vertex's CLUSTER_SPEC), the tuning trial id. Everything after this step takes
the config (or plain values from it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainer.datasets import DATASETS
from trainer.recipes import recipe_for

# Vertex's CLUSTER_SPEC names pools by position; TF_CONFIG names them by role.
_POOL_ROLES = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps"}
_CHIEF_TYPES = ("chief", "master")


class ConfigError(ValueError):
    """A flag or environment value that cannot work; reported as a usage error."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a (possibly single-machine) training cluster."""

    task_type: str = "chief"
    task_index: int = 0
    worker_count: int = 1  # chief plus workers: the processes that train
    tf_config: str = ""  # TF_CONFIG as TensorFlow should see it ("" for one machine)

    @property
    def is_chief(self) -> bool:
        """The chief/master task, or worker 0 when the cluster has no chief pool."""
        if self.task_type in _CHIEF_TYPES:
            return True
        if self.task_type != "worker" or self.task_index != 0:
            return False
        spec = json.loads(self.tf_config or "{}").get("cluster", {})
        return not any(role in spec for role in _CHIEF_TYPES)


@dataclass(frozen=True)
class Config:
    # data
    dataset: str
    data_dir: str | None
    train_files: tuple[str, ...]
    eval_files: tuple[str, ...]
    eval_split: float
    image_size: int
    cache: str
    shuffle_buffer: int
    skip_bad_records: bool
    # model
    model: str
    backbone: str
    pretrained_weights: str
    fine_tune: bool
    fine_tune_at: int
    dropout: float
    bn_momentum: float
    label_smoothing: float
    augment: bool
    # training
    epochs: int
    steps_per_epoch: int | None
    eval_steps: int | None
    batch_size: int
    optimizer: str
    momentum: float
    lr_schedule: str
    learning_rate: float
    lr_decay: float
    min_learning_rate: float
    lr_warmup_epochs: int
    lr_max: float
    mixed_precision: str
    jit_compile: bool
    steps_per_execution: int | None
    seed: int
    # distribution
    distribution: str
    tpu: str
    cpu: bool
    scale_lr_with_batch: bool
    backup_every_steps: int | None
    # outputs
    model_dir: str
    checkpoint_dir: str
    tensorboard_dir: str
    job_dir: str | None
    hypertune_metric: str
    smoke: bool
    smoke_data_dir: str | None
    # environment
    cluster: Cluster = field(default_factory=Cluster)
    trial_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def _split_list(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def output_dirs(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, str]:
    """Model, checkpoint and TensorBoard dirs: flag, then AIP_*, then --job-dir, then ./output."""
    root = args.job_dir or "output"
    return {
        "model_dir": args.model_dir or env.get("AIP_MODEL_DIR") or _join(root, "model"),
        "checkpoint_dir": args.checkpoint_dir
        or env.get("AIP_CHECKPOINT_DIR")
        or _join(root, "checkpoints"),
        "tensorboard_dir": args.tensorboard_dir
        or env.get("AIP_TENSORBOARD_LOG_DIR")
        or _join(root, "logs"),
    }


def read_cluster(env: Mapping[str, str]) -> Cluster:
    """The cluster from TF_CONFIG, or from Vertex's CLUSTER_SPEC when TF_CONFIG is absent."""
    raw = env.get("TF_CONFIG") or ""
    if raw:
        try:
            spec = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ConfigError(f"TF_CONFIG is not valid JSON: {err}") from err
    elif env.get("CLUSTER_SPEC"):
        try:
            vertex = json.loads(env["CLUSTER_SPEC"])
        except json.JSONDecodeError as err:
            raise ConfigError(f"CLUSTER_SPEC is not valid JSON: {err}") from err
        spec = {
            "cluster": {
                _POOL_ROLES.get(pool, pool): hosts
                for pool, hosts in vertex.get("cluster", {}).items()
            },
            "task": {
                "type": _POOL_ROLES.get(vertex["task"]["type"], vertex["task"]["type"]),
                "index": vertex["task"]["index"],
            },
        }
        raw = json.dumps(spec)
    else:
        return Cluster()
    cluster = spec.get("cluster", {})
    task = spec.get("task", {})
    training_roles = ("chief", "master", "worker")
    count = sum(len(cluster.get(role, [])) for role in training_roles)
    if count <= 1:
        # One machine: TensorFlow needs no cluster, and a one-entry TF_CONFIG only slows it.
        return Cluster(task_type=task.get("type", "chief"), task_index=int(task.get("index", 0)))
    return Cluster(
        task_type=str(task.get("type", "worker")),
        task_index=int(task.get("index", 0)),
        worker_count=count,
        tf_config=raw,
    )


def build_config(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    """Resolve flags, recipe defaults and the Vertex environment into a Config."""
    spec = DATASETS[args.dataset]
    model = args.model or spec.default_model
    recipe = recipe_for(args.dataset, model, bool(args.smoke))

    def pick(name: str) -> Any:
        value = getattr(args, name)
        return recipe[name] if value is None else value

    dirs = output_dirs(args, env)
    smoke_data_dir = _join(args.job_dir or "output", "smoke-data") if args.smoke else None
    return Config(
        dataset=args.dataset,
        data_dir=smoke_data_dir or args.data_dir,
        train_files=_split_list(args.train_files),
        eval_files=_split_list(args.eval_files),
        eval_split=args.eval_split,
        image_size=pick("image_size"),
        cache=args.cache,
        shuffle_buffer=pick("shuffle_buffer"),
        skip_bad_records=bool(args.skip_bad_records),
        model=model,
        backbone=args.backbone,
        pretrained_weights=args.pretrained_weights,
        fine_tune=bool(args.fine_tune),
        fine_tune_at=args.fine_tune_at,
        dropout=pick("dropout"),
        bn_momentum=pick("bn_momentum"),
        label_smoothing=args.label_smoothing,
        augment=pick("augment"),
        epochs=pick("epochs"),
        steps_per_epoch=args.steps_per_epoch,
        eval_steps=args.eval_steps,
        batch_size=pick("batch_size"),
        optimizer=pick("optimizer"),
        momentum=args.momentum,
        lr_schedule=pick("lr_schedule"),
        learning_rate=pick("learning_rate"),
        lr_decay=pick("lr_decay"),
        min_learning_rate=pick("min_learning_rate"),
        lr_warmup_epochs=pick("lr_warmup_epochs"),
        lr_max=pick("lr_max"),
        mixed_precision=args.mixed_precision,
        jit_compile=bool(args.jit_compile),
        steps_per_execution=args.steps_per_execution,
        seed=args.seed,
        distribution=args.distribution,
        # AI Platform's TPU jobs name their TPU node in this variable; TPU VMs have chips attached.
        tpu=args.tpu or env.get("KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS") or "local",
        cpu=bool(args.cpu or args.smoke),
        scale_lr_with_batch=bool(args.scale_lr_with_batch),
        backup_every_steps=args.backup_every_steps,
        job_dir=args.job_dir,
        hypertune_metric=args.hypertune_metric,
        smoke=bool(args.smoke),
        smoke_data_dir=smoke_data_dir,
        cluster=read_cluster(env),
        trial_id=env.get("CLOUD_ML_TRIAL_ID"),
        **dirs,
    )
