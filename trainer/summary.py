"""The run record: run_summary.json next to the model, and the structured start/end log lines.

run_summary.json answers "what ran, on what, how well, how long" without TensorBoard:
flags (the resolved config), paths, strategy and replicas, dataset sizes, per-epoch metrics
and learning rates, final metrics, per-class accuracy (added by trainer/report.py), wall times
and the versions of the package, TensorFlow and tf-keras.

The log lines are single JSON objects with `severity` and `message`, which Cloud Logging
parses into structured entries (jsonPayload) on Vertex; locally they are one greppable line.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import sys
import time
from typing import Any

from trainer.config import Config

SUMMARY_FILE = "run_summary.json"
METRIC_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


class EpochLog:
    """Per-epoch metrics, learning rate and wall time, filled by the callback during fit."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(
        self, epoch: int, logs: dict[str, Any] | None = None, learning_rate: float | None = None
    ) -> None:
        logs = dict(logs or {})
        rate = learning_rate if learning_rate is not None else logs.get("lr")
        entry: dict[str, Any] = {"epoch": epoch + 1}
        entry.update({k: _short(v) for k, v in logs.items() if k != "lr" and _is_number(v)})
        entry["learning_rate"] = None if rate is None else _short(rate)
        entry["wall_s"] = round(time.monotonic() - self._started, 3)
        self.epochs.append(entry)

    def callback(self) -> Any:
        """A Keras callback that fills this log; reads the rate from the optimizer itself."""
        from trainer.keras_api import keras

        def on_epoch_end(epoch: int, logs: dict[str, Any] | None) -> None:
            self.on_epoch_end(epoch, logs, _optimizer_rate(recorder.model))

        recorder = keras.callbacks.LambdaCallback(
            on_epoch_begin=self.on_epoch_begin, on_epoch_end=on_epoch_end
        )
        return recorder

    def series(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs if e.get(key) is not None]


def _short(value: Any) -> float:
    """A float32 value without its float64 noise: 0.01, not 0.009999999776482582."""
    return float(f"{float(value):.7g}")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _optimizer_rate(model: Any) -> float | None:
    """The optimizer's current learning rate (what the schedule set for this epoch)."""
    try:
        from trainer.keras_api import keras

        return float(keras.backend.get_value(model.optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None


def versions() -> dict[str, str]:
    """Versions of what ran, for reproducing a result."""
    import numpy

    import trainer
    from trainer.keras_api import tf

    return {
        "trainer": trainer.__version__,
        "tensorflow": tf.version.VERSION,
        "tf_keras": _distribution_version("tf-keras"),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def _distribution_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def build_summary(
    cfg: Config,
    data: Any,
    strategy: Any,
    steps_per_epoch: int,
    epoch_log: EpochLog,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The run record of a finished fit (evaluation and pictures are added by the report)."""
    from trainer.strategy import distribution_name

    last = epoch_log.epochs[-1] if epoch_log.epochs else {}
    return {
        "flags": dataclasses.asdict(cfg),
        "paths": {
            "model_dir": cfg.model_dir,
            "checkpoint_dir": cfg.checkpoint_dir,
            "tensorboard_dir": cfg.tensorboard_dir,
            "data_dir": cfg.data_dir,
            "train_files": list(data.files.train),
            "eval_files": list(data.files.eval),
        },
        "strategy": {
            "distribution": distribution_name(strategy),
            "name": type(strategy).__name__,
            "replicas": int(strategy.num_replicas_in_sync),
            "workers": cfg.cluster.worker_count,
        },
        "data": {
            "dataset": cfg.dataset,
            "format": data.schema,
            "train_records": int(data.train_count),
            "eval_records": int(data.eval_count),
            "batch_size": cfg.batch_size,
            "steps_per_epoch": int(steps_per_epoch),
        },
        "epochs": epoch_log.epochs,
        "final": {k: last[k] for k in METRIC_KEYS if k in last},
        "timings": {
            **{k: round(float(v), 3) for k, v in timings.items()},
            "epochs_s": [e["wall_s"] for e in epoch_log.epochs],
        },
        "versions": versions(),
    }


def to_json_bytes(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=False, default=str) + "\n").encode()


def log_event(event: str, message: str, payload: dict[str, Any]) -> None:
    """One JSON line on stderr (where the logging of the run goes too)."""
    line = {
        "severity": "INFO",
        "message": message,
        "event": event,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        **payload,
    }
    print(json.dumps(line, default=str), file=sys.stderr, flush=True)


def log_start(cfg: Config) -> None:
    """The structured line that opens a run: the whole resolved config."""
    log_event(
        "run_start",
        f"trainer run start: {cfg.dataset} {cfg.model}, {cfg.epochs} epochs, "
        f"batch {cfg.batch_size}, model dir {cfg.model_dir}",
        {"config": dataclasses.asdict(cfg)},
    )


def log_end(record: dict[str, Any]) -> None:
    """The structured line that closes a run: its summary."""
    final = record.get("final", {})
    shown = ", ".join(f"{k} {v:.4f}" for k, v in final.items())
    log_event(
        "run_end",
        f"trainer run end: {shown or 'no epochs'}; model at {record['paths']['model_dir']}",
        {"summary": record},
    )
