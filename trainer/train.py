"""One training run, top to bottom: strategy, data, model, fit, export."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from trainer import accelerators, callbacks, export, optimizers, report, summary
from trainer.config import Config
from trainer.data import InputData, find_bad_record, load_data
from trainer.datasets import DATASETS
from trainer.keras_api import keras, tf
from trainer.models import ModelOptions, build_model
from trainer.preemption import backup_callback, checkpoint_options
from trainer.records import DataError
from trainer.schedules import make_schedule
from trainer.strategy import evaluation_steps, io_device, make_strategy, settle_for_strategy
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


def make_optimizer(cfg: Config, policy: str = "float32") -> Any:
    """The optimizer named by --optimizer; the schedule callback sets its rate per epoch."""
    return optimizers.make_optimizer(cfg.optimizer, cfg.learning_rate, cfg.momentum, policy)


def train_and_evaluate(cfg: Config) -> RunResult:
    started = time.time()
    spec = DATASETS[cfg.dataset]

    # ------------------------------------------------------------------ strategy
    # First: MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs.
    strategy = make_strategy(cfg)
    cfg = settle_for_strategy(cfg, strategy)  # auto resolved, TPU defaults, LR scaled
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
    opts = ModelOptions.from_config(cfg)
    device = accelerators.device_kind(strategy)
    policy = accelerators.resolve_policy(cfg.mixed_precision, device)
    accelerators.apply_policy(policy)  # before building: layers take their dtypes from it
    with strategy.scope():
        model = build_model(cfg.model, spec, cfg.image_size, opts)
        model.compile(
            optimizer=make_optimizer(cfg, policy),
            loss=optimizers.make_loss(cfg.label_smoothing),
            metrics=["accuracy"],
            steps_per_execution=accelerators.steps_per_execution(cfg.steps_per_execution, device),
            jit_compile=cfg.jit_compile,
        )
    log.info("model %s: %d parameters, %s on %s", cfg.model, model.count_params(), policy, device)

    # ------------------------------------------------------------------ train
    schedule = make_schedule(
        cfg.lr_schedule,
        cfg.learning_rate,
        cfg.lr_decay,
        cfg.min_learning_rate,
        cfg.lr_warmup_epochs,
        cfg.lr_max,
    )
    epoch_log = summary.EpochLog()  # per-epoch metrics, rates and wall times for the record
    fit_callbacks = [
        backup_callback(cfg, steps_per_epoch, checkpoint_options(io_device(device))),
        callbacks.learning_rate_callback(schedule),
        callbacks.nan_guard_callback(),
        keras.callbacks.TensorBoard(log_dir=cfg.tensorboard_dir, profile_batch=0),
        epoch_log.callback(),
    ]
    if cfg.cluster.is_chief:
        fit_callbacks.append(callbacks.hypertune_callback(cfg.hypertune_metric, steps_per_epoch))
        fit_callbacks.append(report.tensorboard_images_callback(cfg.tensorboard_dir, spec, data))
    fit_started = time.time()
    try:
        history = model.fit(
            train_ds,
            epochs=cfg.epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=eval_ds,
            validation_steps=evaluation_steps(cfg, data.eval_count),
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
        export.save_model(model, spec, cfg.image_size, staged, io_device=io_device(device))
        export.write_files(staged, {"config.json": cfg.to_json().encode()})
        export.write_files(staged, {"history.json": json.dumps(metrics, indent=2).encode()})
        timings["export_s"] = time.time() - export_started
        record = summary.build_summary(cfg, data, strategy, steps_per_epoch, epoch_log, timings)
        if cfg.cluster.is_chief:  # pictures and run_summary.json appear with the model
            report.write_report(staged, cfg, spec, model, data, record)
        export.publish(staged, cfg.model_dir)
    except BaseException:
        export.remove_quietly(staged)
        raise
    timings["export_s"] = time.time() - export_started
    log.info("exported SavedModel to %s", cfg.model_dir)
    summary.log_end(record)
    return RunResult(
        model_dir=cfg.model_dir,
        history=metrics,
        model=model,
        data=data,
        steps_per_epoch=steps_per_epoch,
        replicas=replicas,
        timings=timings,
    )
