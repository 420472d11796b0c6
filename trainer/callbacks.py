"""Callbacks of `model.fit`: learning-rate schedule, hyperparameter-tuning report, NaN guard."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from trainer.keras_api import keras


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, missing metric); the message says why."""


def learning_rate_callback(schedule: Callable[[int], float]) -> Any:
    """Set the optimizer's learning rate at the start of every epoch."""
    return keras.callbacks.LearningRateScheduler(lambda epoch, _lr: schedule(epoch))


def hypertune_callback(metric: str, steps_per_epoch: int, reporter: Any | None = None) -> Any:
    """Report `metric` to Vertex hyperparameter tuning after every epoch and at the end.

    cloudml-hypertune writes the file that Vertex's tuning service reads
    ($CLOUD_ML_HP_METRIC_FILE); the tag must equal the job's metricId.
    """
    if reporter is None:
        import hypertune

        reporter = hypertune.HyperTune()
    last: dict[str, float] = {}

    def on_epoch_end(epoch: int, logs: dict[str, float] | None) -> None:
        logs = logs or {}
        if metric not in logs:
            raise TrainingError(
                f"--hypertune-metric {metric} is not among the metrics of this run "
                f"({', '.join(sorted(logs))})"
            )
        last.update(value=float(logs[metric]), step=(epoch + 1) * steps_per_epoch)
        reporter.report_hyperparameter_tuning_metric(
            hyperparameter_metric_tag=metric, metric_value=last["value"], global_step=last["step"]
        )

    def on_train_end(logs: dict[str, float] | None) -> None:
        if last:
            reporter.report_hyperparameter_tuning_metric(
                hyperparameter_metric_tag=metric,
                metric_value=last["value"],
                global_step=last["step"],
            )

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end, on_train_end=on_train_end)


def nan_guard_callback() -> Any:
    """Stop with a clear error when the loss stops being a number."""

    def on_epoch_end(epoch: int, logs: dict[str, float] | None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingError(
                f"loss became {loss} in epoch {epoch + 1}; lower --learning-rate "
                "or check the input data"
            )

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)
