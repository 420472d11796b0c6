"""The pictures: rendered from plain arrays, and written next to the model by a real run."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.run_outputs import Run, mnist_run
from trainer import plots
from trainer.datasets import DIGIT_CLASSES, FLOWER_CLASSES
from trainer.synthetic import flower_jpegs, font_digits

PICTURES = ("training_curves.png", "learning_rate.png", "predictions.png", "confusion_matrix.png")


def open_png(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def assert_not_blank(pixels: np.ndarray) -> None:
    assert pixels.std() > 20, "the picture is (nearly) one colour"


def red_pixels(pixels: np.ndarray) -> int:
    """Pixels of the pure red that marks wrong predictions."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(np.sum((r > 200) & (g < 60) & (b < 60)))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels = font_digits(20, seed=5)
    return images[..., None].astype(np.float32), labels.astype(int)


@pytest.fixture(scope="module")
def flowers() -> tuple[np.ndarray, np.ndarray]:
    items = list(flower_jpegs(8, size=64, seed=5))
    images = np.stack([np.asarray(Image.open(io.BytesIO(jpeg))) for jpeg, _ in items])
    return images.astype(np.float32), np.array([label for _, label in items])


def test_training_curves_two_panels_of_train_and_validation() -> None:
    metrics = {
        "accuracy": [0.5, 0.8, 0.9],
        "val_accuracy": [0.6, 0.7, 0.85],
        "loss": [1.2, 0.6, 0.3],
        "val_loss": [1.0, 0.8, 0.5],
    }
    pixels = open_png(plots.training_curves([1, 2, 3], metrics, "mnist · conv"))
    assert pixels.shape == (800, 1000, 3)
    assert_not_blank(pixels)
    one_epoch = open_png(plots.training_curves([1], {k: v[:1] for k, v in metrics.items()}))
    assert_not_blank(one_epoch)


def test_learning_rate_curve_is_drawn() -> None:
    pixels = open_png(plots.learning_rate_curve([1, 2, 3, 4], [0.01, 0.00666, 0.0044, 0.003]))
    assert pixels.shape == (600, 900, 3)
    assert_not_blank(pixels)


def test_digit_grid_marks_only_wrong_predictions_in_red(digits) -> None:
    images, labels = digits
    right = open_png(plots.prediction_grid(images, labels, labels, DIGIT_CLASSES))
    assert_not_blank(right)
    assert red_pixels(right) == 0
    predicted = labels.copy()
    predicted[[0, 7]] = (labels[[0, 7]] + 1) % 10
    wrong = open_png(plots.prediction_grid(images, predicted, labels, DIGIT_CLASSES))
    assert wrong.shape == right.shape
    assert red_pixels(wrong) > 200  # two red frames and two red labels


def test_flower_grid_labels_with_class_names(flowers) -> None:
    images, labels = flowers
    predicted = labels.copy()
    predicted[3] = (labels[3] + 1) % 5
    pixels = open_png(plots.prediction_grid(images, predicted, labels, FLOWER_CLASSES))
    assert pixels.shape[1] > 900  # four flowers to a row
    assert_not_blank(pixels)
    assert red_pixels(pixels) > 100
    label = plots.prediction_label(int(predicted[3]), int(labels[3]), FLOWER_CLASSES, True)
    assert label == f"{FLOWER_CLASSES[predicted[3]]}\n(true {FLOWER_CLASSES[labels[3]]})"
    assert plots.prediction_label(2, 2, FLOWER_CLASSES) == "roses"


def test_examples_show_mistakes_but_not_only_mistakes() -> None:
    true = np.arange(20) % 10
    predicted = true.copy()
    predicted[[2, 5, 6, 9, 11, 12, 13, 15, 17, 19]] += 1
    chosen = plots.choose_examples(predicted, true, 8)
    assert len(chosen) == 8 and list(chosen) == sorted(chosen)
    assert np.sum(predicted[chosen] != true[chosen]) == 4


def test_confusion_matrix_and_per_class_accuracy() -> None:
    true = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 2])
    matrix = plots.confusion_matrix(true, predicted, 4)
    assert matrix.tolist() == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert plots.per_class_accuracy(matrix) == [pytest.approx(2 / 3), 0.5, 1.0, None]
    pixels = open_png(plots.confusion_matrix_plot(matrix, ["a", "b", "c", "d"]))
    assert_not_blank(pixels)


@pytest.fixture(scope="module")
def run(mnist_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return mnist_run(mnist_dir, tmp_path_factory)


def test_a_run_publishes_its_pictures_with_the_model(run: Run) -> None:
    assert run.status == 0, run.stderr[-2000:]
    for name in PICTURES:
        pixels = open_png((run.model_dir / name).read_bytes())
        assert pixels.shape[0] >= 400 and pixels.shape[1] >= 600, name
        assert_not_blank(pixels)
    assert (run.model_dir / "saved_model.pb").exists()
    # Drawn in the staging folder: nothing is left beside the published model.
    assert sorted(p.name for p in run.root.iterdir() if p.name.startswith("model")) == ["model"]


def test_a_run_puts_prediction_images_in_tensorboard(run: Run) -> None:
    from trainer.keras_api import tf

    tags: dict[str, list[int]] = {}
    for path in sorted(Path(run.tensorboard_dir, "images").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    assert tags["predictions_by_epoch"] == [1, 2, 3, 4, 5, 6]  # the same images after every epoch
    assert tags["predictions"] == [6] and tags["confusion_matrix"] == [6]
    assert (run.tensorboard_dir / "train").is_dir()  # Keras' scalars beside them
