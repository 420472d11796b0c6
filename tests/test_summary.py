"""run_summary.json and the structured start/end log lines of a real run."""

from __future__ import annotations

import json

import pytest

from tests.run_outputs import Run, mnist_run
from trainer import summary
from trainer.datasets import DIGIT_CLASSES


@pytest.fixture(scope="module")
def run(mnist_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return mnist_run(mnist_dir, tmp_path_factory)


def test_summary_records_what_ran_on_what(run: Run, mnist_dir: str) -> None:
    assert run.status == 0, run.stderr[-2000:]
    record = run.summary()
    assert record["flags"]["model"] == "conv" and record["flags"]["epochs"] == 6
    assert record["paths"]["model_dir"] == str(run.model_dir)
    assert record["paths"]["tensorboard_dir"] == str(run.tensorboard_dir)
    assert record["paths"]["train_files"][0].startswith(mnist_dir)
    assert record["strategy"]["replicas"] == 1 and record["strategy"]["name"]
    assert record["data"]["train_records"] == 320 and record["data"]["eval_records"] == 96
    assert record["data"]["steps_per_epoch"] == 320 // 32
    from trainer.keras_api import tf

    assert record["versions"]["tensorflow"] == tf.version.VERSION
    assert record["versions"]["tf_keras"].split(".")[:2] == tf.version.VERSION.split(".")[:2]


def test_summary_has_every_epoch_with_the_learning_rate_used(run: Run) -> None:
    record = run.summary()
    epochs = record["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5, 6]
    # The recipe's exponential schedule from --learning-rate 0.005, read off the optimizer.
    rates = [e["learning_rate"] for e in epochs]
    assert rates == pytest.approx([0.005 * 0.666**i for i in range(6)], rel=1e-5)
    history = json.loads((run.model_dir / "history.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [e[key] for e in epochs] == pytest.approx(history[key])
        assert record["final"][key] == pytest.approx(history[key][-1])
    assert all(e["wall_s"] > 0 for e in epochs)
    timings = record["timings"]
    assert timings["epochs_s"] == [e["wall_s"] for e in epochs]
    assert {"startup_s", "fit_s", "export_s", "report_s"} <= set(timings)
    assert timings["fit_s"] >= sum(timings["epochs_s"]) * 0.99


def test_summary_has_per_class_accuracy_of_the_whole_validation_set(run: Run) -> None:
    evaluation = run.summary()["evaluation"]
    matrix = evaluation["confusion_matrix"]
    assert evaluation["records"] == 96 == sum(map(sum, matrix))
    assert set(evaluation["per_class_accuracy"]) == set(DIGIT_CLASSES)
    for i, name in enumerate(DIGIT_CLASSES):
        row = matrix[i]
        expected = row[i] / sum(row) if sum(row) else None
        assert evaluation["per_class_accuracy"][name] == pytest.approx(expected)
    # The same model on the same records as Keras' last validation pass.
    final = run.summary()["final"]["val_accuracy"]
    assert evaluation["accuracy"] == pytest.approx(final, abs=0.5 / 96)
    assert sorted(run.summary()["pictures"]) == sorted(
        ["confusion_matrix.png", "learning_rate.png", "predictions.png", "training_curves.png"]
    )


def test_one_structured_line_at_start_and_one_at_end(run: Run) -> None:
    lines = run.json_lines()
    assert [line["event"] for line in lines] == ["run_start", "run_end"]
    start, end = lines
    assert start["severity"] == "INFO" and "mnist conv" in start["message"]
    assert start["config"]["model_dir"] == str(run.model_dir)
    assert end["summary"]["final"] == run.summary()["final"]
    assert end["summary"]["evaluation"]["accuracy"] == run.summary()["evaluation"]["accuracy"]


def test_one_progress_line_per_epoch_when_output_is_not_a_terminal(run: Run) -> None:
    # As on Vertex, where redrawn progress bars would flood Cloud Logging.
    epoch_lines = [line for line in run.stdout.splitlines() if line.startswith("10/10 - ")]
    assert len(epoch_lines) == 6
    assert "val_accuracy" in epoch_lines[-1]
    assert "\r" not in run.stdout and "\b" not in run.stdout


def test_epoch_log_takes_the_scheduler_rate_when_the_optimizer_has_none() -> None:
    log = summary.EpochLog()
    log.on_epoch_begin(0)
    log.on_epoch_end(0, {"loss": 1.5, "val_accuracy": 0.25, "lr": 0.01})
    log.on_epoch_begin(1)
    log.on_epoch_end(1, {"loss": 1.0, "val_accuracy": 0.5}, learning_rate=0.005)
    assert [e["epoch"] for e in log.epochs] == [1, 2]
    assert [e["learning_rate"] for e in log.epochs] == [0.01, 0.005]
    assert "lr" not in log.epochs[0] and log.series("val_accuracy") == [0.25, 0.5]


def test_log_event_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    summary.log_event("run_end", "done", {"summary": {"final": {"loss": 0.5}}})
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    line = json.loads(err)
    assert (line["severity"], line["message"], line["event"]) == ("INFO", "done", "run_end")
    assert line["summary"]["final"]["loss"] == 0.5 and line["time"].endswith("+00:00")
