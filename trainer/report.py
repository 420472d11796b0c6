"""The report of a run: pictures, run_summary.json and TensorBoard images, by the chief.

Written into the export's staging folder before it is published, so the pictures and the
summary appear at --model-dir together with the model they describe (local or gs://). A
failure while drawing is logged and leaves the model and the summary intact: a picture is
never worth losing a trained model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer import plots
from trainer.datasets import DatasetSpec
from trainer.export import write_files
from trainer.keras_api import keras, tf
from trainer.summary import SUMMARY_FILE, to_json_bytes

log = logging.getLogger(__name__)

MAX_EVAL_RECORDS = 10_000  # a full MNIST test set; enough for a stable confusion matrix
KEPT_IMAGES = 256  # images kept (uint8) for the grid; mistakes are found among them
PREDICT_BATCH = 256  # bounds host memory whatever the training batch size
TENSORBOARD_IMAGES_RUN = "images"  # TensorBoard run (sub-folder) of the image summaries


def grid_size(spec: DatasetSpec, rows: int = 4) -> int:
    """Images per grid: rows of ten digits, or rows of four flowers."""
    return rows * (10 if spec.channels == 1 else 4)


@dataclass
class Evaluation:
    """Predictions on the validation set, with the first images kept for pictures."""

    true: np.ndarray  # class ids [n]
    predicted: np.ndarray  # class ids [n]
    images: np.ndarray  # the first KEPT_IMAGES images, uint8 [k, h, w, c]


def predict_images(model: Any, images: Any) -> np.ndarray:
    """Class ids predicted by the in-memory model (read-only: safe outside strategy.run)."""
    probabilities = model(images, training=False)
    return np.argmax(np.asarray(tf.cast(probabilities, tf.float32)), axis=-1)


def evaluate(model: Any, data: Any, limit: int = MAX_EVAL_RECORDS) -> Evaluation:
    """Predict every validation record (up to limit) with the in-memory model."""
    trues, preds, kept = [], [], []
    seen = 0
    records = data.eval_fn(tf.distribute.InputContext()).unbatch().batch(PREDICT_BATCH)
    for images, labels in records:
        if seen >= limit:
            break
        preds.append(predict_images(model, images))
        trues.append(np.argmax(labels.numpy(), axis=-1))
        if seen < KEPT_IMAGES:
            kept.append(images.numpy()[: KEPT_IMAGES - seen].astype(np.uint8))
        seen += len(preds[-1])
    if not trues:
        raise ValueError("the evaluation data is empty")
    return Evaluation(
        true=np.concatenate(trues)[:limit],
        predicted=np.concatenate(preds)[:limit],
        images=np.concatenate(kept),
    )


def evaluation_record(ev: Evaluation, spec: DatasetSpec) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix for run_summary.json."""
    matrix = plots.confusion_matrix(ev.true, ev.predicted, spec.num_classes)
    per_class = plots.per_class_accuracy(matrix)
    return {
        "records": len(ev.true),
        "accuracy": float(np.mean(ev.true == ev.predicted)),
        "per_class_accuracy": dict(zip(spec.class_names, per_class, strict=True)),
        "confusion_matrix": matrix.tolist(),
    }


def predictions_picture(ev: Evaluation, spec: DatasetSpec) -> bytes:
    kept = len(ev.images)
    chosen = plots.choose_examples(ev.predicted[:kept], ev.true[:kept], grid_size(spec))
    right = int(np.sum(ev.predicted[chosen] == ev.true[chosen]))
    return plots.prediction_grid(
        ev.images[chosen],
        ev.predicted[chosen],
        ev.true[chosen],
        spec.class_names,
        title=f"{spec.name} validation images: predicted label under each, "
        f"wrong ones in red with the true label ({right} of {len(chosen)} right)",
    )


def pictures(
    record: dict[str, Any], ev: Evaluation, spec: DatasetSpec, model_name: str
) -> dict[str, bytes]:
    """The four PNGs of a run, by file name."""
    epochs = [e["epoch"] for e in record["epochs"]]
    metrics = {k: [e.get(k) for e in record["epochs"]] for k in plots_metric_keys(record)}
    final = record["evaluation"]["accuracy"]
    title = f"{spec.name} · {model_name} · validation accuracy {final:.2%}"
    rates = [e["learning_rate"] for e in record["epochs"] if e["learning_rate"] is not None]
    matrix = np.asarray(record["evaluation"]["confusion_matrix"])
    return {
        "training_curves.png": plots.training_curves(epochs, metrics, title),
        "learning_rate.png": plots.learning_rate_curve(epochs[: len(rates)], rates),
        "predictions.png": predictions_picture(ev, spec),
        "confusion_matrix.png": plots.confusion_matrix_plot(matrix, spec.class_names),
    }


def plots_metric_keys(record: dict[str, Any]) -> list[str]:
    """Metrics present in every epoch (a metric missing from one epoch is left out)."""
    keys = ("accuracy", "val_accuracy", "loss", "val_loss")
    return [k for k in keys if record["epochs"] and all(k in e for e in record["epochs"])]


def tensorboard_writer(log_dir: str) -> Any:
    """A summary writer for the `images` run of log_dir (beside Keras' train and validation)."""
    return tf.summary.create_file_writer(f"{log_dir.rstrip('/')}/{TENSORBOARD_IMAGES_RUN}")


def write_tensorboard_images(writer: Any, images: dict[str, bytes], step: int) -> None:
    """PNGs as TensorBoard image summaries, tagged by file name."""
    with writer.as_default():
        for name, png in images.items():
            tag = name.removesuffix(".png")
            tf.summary.image(tag, tf.io.decode_png(png, channels=3)[tf.newaxis], step=step)
    writer.flush()


def write_report(
    folder: str, cfg: Any, spec: DatasetSpec, model: Any, data: Any, record: dict[str, Any]
) -> dict[str, Any]:
    """Evaluate, draw and write the pictures and run_summary.json into folder.

    Adds `evaluation` (accuracy, per-class accuracy, confusion matrix), `pictures` and
    `timings.report_s` to record and returns it.
    """
    started = time.time()
    try:
        ev = evaluate(model, data)
        record["evaluation"] = evaluation_record(ev, spec)
        images = pictures(record, ev, spec, cfg.model)
        write_files(folder, images)
        record["pictures"] = sorted(images)
        last_epoch = record["epochs"][-1]["epoch"] if record["epochs"] else 0
        writer = tensorboard_writer(cfg.tensorboard_dir)
        shown = ("predictions.png", "confusion_matrix.png")
        write_tensorboard_images(writer, {k: images[k] for k in shown}, last_epoch)
        writer.close()
    except (tf.errors.OpError, ValueError, RuntimeError, OSError) as err:
        log.warning("run pictures not written: %s: %s", type(err).__name__, err)
        record["report_error"] = f"{type(err).__name__}: {err}"
    record["timings"]["report_s"] = round(time.time() - started, 3)
    write_files(folder, {SUMMARY_FILE: to_json_bytes(record)})
    log.info(
        "wrote %s and %d picture(s) next to the model",
        SUMMARY_FILE,
        len(record.get("pictures", [])),
    )
    return record


def sample_batch(data: Any, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` validation images and class ids, the same ones every epoch."""
    ds = data.eval_fn(tf.distribute.InputContext()).unbatch().take(count).batch(count)
    images, labels = next(iter(ds))
    return images.numpy(), np.argmax(labels.numpy(), axis=-1)


def tensorboard_images_callback(log_dir: str, spec: DatasetSpec, data: Any) -> Any:
    """After every epoch, the same validation images with their current predictions.

    TensorBoard's Images tab then shows the labels turning from red to black as the model
    learns, the live view the codelabs drew in the notebook.
    """
    state: dict[str, Any] = {}

    def on_train_begin(logs: dict[str, Any] | None = None) -> None:
        try:
            # Two rows: a small picture per epoch keeps the event files small.
            state["images"], state["true"] = sample_batch(data, grid_size(spec, rows=2))
            state["writer"] = tensorboard_writer(log_dir)
        except (tf.errors.OpError, ValueError, StopIteration) as err:
            log.warning("no TensorBoard images this run: %s", err)

    def on_epoch_end(epoch: int, logs: dict[str, Any] | None = None) -> None:
        if "images" not in state:
            return
        try:
            predicted = predict_images(callback.model, state["images"])
            png = plots.prediction_grid(
                state["images"],
                predicted,
                state["true"],
                spec.class_names,
                title=f"epoch {epoch + 1}: predicted (true), wrong in red",
            )
            write_tensorboard_images(state["writer"], {"predictions_by_epoch": png}, epoch + 1)
        except (tf.errors.OpError, ValueError, RuntimeError, OSError) as err:
            log.warning("TensorBoard images stopped: %s", err)
            state.pop("images")

    def on_train_end(logs: dict[str, Any] | None = None) -> None:
        if "writer" in state:
            state.pop("writer").close()

    callback = keras.callbacks.LambdaCallback(
        on_train_begin=on_train_begin, on_epoch_end=on_epoch_end, on_train_end=on_train_end
    )
    return callback
