"""One training run, top to bottom: strategy, data, model, fit, export."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from trainer import callbacks, export
from trainer.config import Config
from trainer.data import InputData, find_bad_record, load_data
from trainer.datasets import DATASETS
from trainer.keras_api import keras, tf
from trainer.models import ModelOptions, build_model
from trainer.records import DataError
from trainer.schedules import make_schedule
from trainer.strategy import make_strategy
from trainer.synthetic import make_smoke_data

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    model_dir: str
    history: dict[str, list[float]]
    model: Any
    data: InputData
    steps_per_epoch: int
    replicas: int
    timings: dict[str, float] = field(default_factory=dict)


def check_batches(batch_size: int, replicas: int, train_count: int) -> None:
    """Fail fast, naming the numbers, on batch sizes that cannot work."""
    if batch_size % replicas:
        raise callbacks.TrainingError(
            f"--batch-size {batch_size} does not divide over {replicas} replicas; "
            f"use a multiple of {replicas}"
        )
    if train_count < batch_size:
        raise callbacks.TrainingError(
            f"--batch-size {batch_size} is larger than the {train_count} training records"
        )


def make_optimizer(cfg: Config) -> Any:
    """The optimizer named by --optimizer; the schedule callback sets its rate per epoch."""
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum)
    if cfg.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(cfg.learning_rate, momentum=cfg.momentum)
    return keras.optimizers.Adam(cfg.learning_rate)


def train_and_evaluate(cfg: Config) -> RunResult:
    started = time.time()
    spec = DATASETS[cfg.dataset]

    # ------------------------------------------------------------------ strategy
    # First: MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs.
    strategy = make_strategy(cfg)
    replicas = strategy.num_replicas_in_sync

    # ------------------------------------------------------------------ data
    if cfg.smoke and cfg.smoke_data_dir:
        written = make_smoke_data(cfg.dataset, cfg.smoke_data_dir, cfg.seed)
        log.info("smoke data: %d files in %s", len(written), cfg.smoke_data_dir)
    data = load_data(cfg, spec)
    check_batches(cfg.batch_size, replicas, data.train_count)
    steps_per_epoch = cfg.steps_per_epoch or data.train_count // cfg.batch_size
    log.info(
        "data: %d training records in %d file(s), %d evaluation records in %d file(s) (%s); "
        "batch %d = %d per replica x %d, %d steps per epoch",
        data.train_count,
        len(data.files.train),
        data.eval_count,
        len(data.files.eval),
        data.schema,
        cfg.batch_size,
        cfg.batch_size // replicas,
        replicas,
        steps_per_epoch,
    )
    train_ds = strategy.distribute_datasets_from_function(data.train_fn)
    eval_ds = strategy.distribute_datasets_from_function(data.eval_fn)

    # ------------------------------------------------------------------ model
    tf.keras.utils.set_random_seed(cfg.seed)
    opts = ModelOptions(
        dropout=cfg.dropout,
        bn_momentum=cfg.bn_momentum,
        backbone=cfg.backbone,
        pretrained_weights=cfg.pretrained_weights,
        fine_tune=cfg.fine_tune,
        fine_tune_at=cfg.fine_tune_at,
    )
    with strategy.scope():
        model = build_model(cfg.model, spec, cfg.image_size, opts)
        model.compile(
            optimizer=make_optimizer(cfg),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"],
            steps_per_execution=cfg.steps_per_execution or 1,
            jit_compile=cfg.jit_compile,
        )
    log.info("model %s: %d parameters", cfg.model, model.count_params())

    # ------------------------------------------------------------------ train
    schedule = make_schedule(
        cfg.lr_schedule,
        cfg.learning_rate,
        cfg.lr_decay,
        cfg.min_learning_rate,
        cfg.lr_warmup_epochs,
        cfg.lr_max,
    )
    fit_callbacks = [
        callbacks.learning_rate_callback(schedule),
        callbacks.nan_guard_callback(),
        keras.callbacks.TensorBoard(log_dir=cfg.tensorboard_dir, profile_batch=0),
    ]
    if cfg.cluster.is_chief:
        fit_callbacks.append(callbacks.hypertune_callback(cfg.hypertune_metric, steps_per_epoch))
    fit_started = time.time()
    try:
        history = model.fit(
            train_ds,
            epochs=cfg.epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=eval_ds,
            validation_steps=cfg.eval_steps,
            callbacks=fit_callbacks,
            verbose=1 if sys.stdout.isatty() else 2,  # one line per epoch in Cloud Logging
        )
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
        where = find_bad_record(cfg, spec, data)
        if where is None:
            raise
        raise DataError(where) from err
    timings = {"startup_s": fit_started - started, "fit_s": time.time() - fit_started}
    metrics = {k: [float(v) for v in vs] for k, vs in history.history.items()}

    # ------------------------------------------------------------------ export
    export_started = time.time()
    staged = export.staging_dir(cfg.model_dir)
    try:
        export.save_model(model, spec, cfg.image_size, staged)
        export.write_files(staged, {"config.json": cfg.to_json().encode()})
        export.write_files(staged, {"history.json": json.dumps(metrics, indent=2).encode()})
        export.publish(staged, cfg.model_dir)
    except BaseException:
        export.remove_quietly(staged)
        raise
    timings["export_s"] = time.time() - export_started
    log.info("exported SavedModel to %s", cfg.model_dir)
    return RunResult(
        model_dir=cfg.model_dir,
        history=metrics,
        model=model,
        data=data,
        steps_per_epoch=steps_per_epoch,
        replicas=replicas,
        timings=timings,
    )
