"""The pictures of a run, in the codelabs' style, rendered to PNG bytes.

training_curves.png   accuracy and loss per epoch, training and validation, in two panels
learning_rate.png     the learning rate of every epoch, as the optimizer actually used it
predictions.png       validation images with their predicted labels, wrong ones in red
confusion_matrix.png  true class against predicted class, with per-class accuracy

Plain numpy in, PNG bytes out: no TensorFlow, no files. matplotlib is imported inside the
functions and drawn with its Agg canvas (no pyplot, no display, no global state), so importing
this module costs nothing and rendering works on headless training machines.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DPI = 100
TRAIN_COLOUR = "#1f77b4"  # the codelabs' matplotlib blue and orange
VALID_COLOUR = "#ff7f0e"
WRONG_COLOUR = "red"
FIGURE_FACE = "#F0F0F0"  # the codelabs' grey figure and lighter axes
AXES_FACE = "#F8F8F8"


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, facecolor=FIGURE_FACE)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor=figure.get_facecolor())
    return buffer.getvalue()


def _integer_epochs(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def training_curves(
    epochs: Sequence[int], metrics: Mapping[str, Sequence[float]], title: str = ""
) -> bytes:
    """Accuracy (top) and loss (bottom) per epoch, training against validation."""
    figure = _figure(10, 8)
    for row, name in enumerate(("accuracy", "loss")):
        ax = figure.add_subplot(2, 1, row + 1, facecolor=AXES_FACE)
        for key, label, colour in (
            (name, "train", TRAIN_COLOUR),
            (f"val_{name}", "valid.", VALID_COLOUR),
        ):
            if metrics.get(key):
                ax.plot(epochs, metrics[key], "o-", color=colour, label=label, linewidth=2)
        ax.set_title(f"model {name}")
        ax.set_ylabel(name)
        ax.set_xlabel("epoch")
        ax.grid(True, linestyle=":", linewidth=0.5)
        _integer_epochs(ax)
        if ax.lines:
            ax.legend()
    if title:
        figure.suptitle(title, fontsize=13)
    figure.tight_layout()
    return _png(figure)


def learning_rate_curve(epochs: Sequence[int], rates: Sequence[float]) -> bytes:
    """The codelab's step plot: one flat step per epoch at the rate used in that epoch."""
    figure = _figure(9, 6)
    ax = figure.add_subplot(1, 1, 1, facecolor=AXES_FACE)
    if len(rates):
        # Each epoch a flat step centred on its number; one more point closes the last one.
        xs = [e - 0.5 for e in epochs] + [epochs[-1] + 0.5]
        ax.step(xs, [*rates, rates[-1]], where="post", linewidth=3, color=TRAIN_COLOUR)
        ax.set_title(f"Learning rate\nfrom {rates[0]:0.3g} to {rates[-1]:0.3g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.minorticks_on()
    ax.grid(True, which="major", linestyle="-", linewidth=1)
    ax.grid(True, which="minor", linestyle=":", linewidth=0.5)
    _integer_epochs(ax)
    figure.tight_layout()
    return _png(figure)


def choose_examples(predicted: np.ndarray, true: np.ndarray, count: int) -> np.ndarray:
    """Indices to show: up to half of them mistakes (the interesting ones), in data order."""
    wrong = np.flatnonzero(predicted != true)[: count // 2]
    right = np.flatnonzero(predicted == true)[: count - len(wrong)]
    return np.sort(np.concatenate([wrong, right]))


def prediction_label(
    predicted: int, true: int, class_names: Sequence[str], two_lines: bool = False
) -> str:
    """The label under an image: the prediction, and the truth when they differ."""
    if predicted == true:
        return class_names[predicted]
    return f"{class_names[predicted]}{chr(10) if two_lines else ' '}(true {class_names[true]})"


def _as_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images; digits (one channel, light ink on black) drawn dark on white."""
    pixels = np.clip(images, 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        return np.repeat(255 - pixels, 3, axis=-1)
    return pixels


def _mosaic(pixels: np.ndarray, columns: int, gap: tuple[int, int], fill: int) -> np.ndarray:
    """Images side by side in rows, with `gap` (below, right) pixels between them."""
    count, height, width, _ = pixels.shape
    rows = math.ceil(count / columns)
    below, right = gap
    canvas = np.full((rows * (height + below), columns * (width + right), 3), fill, np.uint8)
    for i, image in enumerate(pixels):
        top, left = (i // columns) * (height + below), (i % columns) * (width + right)
        canvas[top : top + height, left : left + width] = image
    return canvas


def prediction_grid(
    images: np.ndarray,
    predicted: np.ndarray,
    true: np.ndarray,
    class_names: Sequence[str],
    title: str = "",
) -> bytes:
    """Images [n, h, w, channels] (values 0-255) with their labels, wrong ones in red.

    Digits are drawn dark on light, ten to a row, as in the MNIST codelab; flowers four to a
    row with class names, as in the flowers codelab. One mosaic in one axes: a grid of
    subplots takes seconds to lay out, this takes a fraction of one.
    """
    from matplotlib.patches import Rectangle

    count, height, width, _ = images.shape
    digits = images.shape[-1] == 1
    columns = max(1, min(count, 10 if digits else 4))
    # Room under each image for its label: one line for digits, two for class names.
    below, right = round(height * (0.45 if digits else 0.32)), round(width * 0.12)
    mosaic = _mosaic(_as_rgb(images), columns, (below, right), fill=240)
    cell_inches = 1.25 if digits else 2.6
    title_inches = 0.6
    grid_w = cell_inches * columns
    grid_h = grid_w * mosaic.shape[0] / mosaic.shape[1]
    figure = _figure(grid_w + 0.3, grid_h + title_inches)
    ax = figure.add_axes(
        (0.15 / (grid_w + 0.3), 0.0, grid_w / (grid_w + 0.3), grid_h / (grid_h + title_inches))
    )
    ax.imshow(mosaic, interpolation="nearest" if digits else "antialiased")
    ax.set_axis_off()
    for i in range(count):
        top, left = (i // columns) * (height + below), (i % columns) * (width + right)
        wrong = int(predicted[i]) != int(true[i])
        colour = WRONG_COLOUR if wrong else "black"
        ax.add_patch(
            Rectangle(
                (left - 0.5, top - 0.5),
                width,
                height,
                fill=False,
                edgecolor=WRONG_COLOUR if wrong else "#BBBBBB",
                linewidth=2.5 if wrong else 0.6,
            )
        )
        ax.text(
            left + width / 2,
            top + height + below * 0.12,
            prediction_label(int(predicted[i]), int(true[i]), class_names, not digits),
            color=colour,
            ha="center",
            va="top",
            fontsize=10 if digits else 11,
            fontweight="bold" if wrong else "normal",
            linespacing=1.1,
        )
    figure.suptitle(
        title or "predictions (wrong ones in red)", fontsize=12, y=1 - 0.2 / (grid_h + title_inches)
    )
    return _png(figure)


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, int), np.asarray(predicted, int)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> list[float | None]:
    """Share of each true class predicted right; None for a class absent from the data."""
    totals = matrix.sum(axis=1)
    return [float(matrix[i, i] / t) if t else None for i, t in enumerate(totals)]


def confusion_matrix_plot(matrix: np.ndarray, class_names: Sequence[str], title: str = "") -> bytes:
    """Row-normalised matrix in the flowers codelab's reds, counts written in the cells."""
    n = len(class_names)
    totals = matrix.sum(axis=1, keepdims=True)
    rates = matrix / np.maximum(totals, 1)
    side = 4.5 + 0.35 * n
    figure = _figure(side + 1.2, side)
    ax = figure.add_subplot(1, 1, 1)
    image = ax.matshow(rates, cmap="Reds", vmin=0.0, vmax=1.0)
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if rates[row, col] > 0.5 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=10)
    accuracies = per_class_accuracy(matrix)
    ax.set_xticks(range(n))
    long_names = max(len(name) for name in class_names) > 2
    ax.set_xticklabels(
        class_names, rotation=45 if long_names else 0, ha="left" if long_names else "center"
    )
    ax.set_yticks(range(n))
    ax.set_yticklabels(
        [
            f"{name} {'-' if acc is None else f'{acc:.0%}'}"
            for name, acc in zip(class_names, accuracies, strict=True)
        ]
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (per-class accuracy)")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    total = int(matrix.sum())
    right = int(np.trace(matrix))
    ax.set_title(
        title or f"confusion matrix: {right}/{total} right ({right / max(total, 1):.1%})",
        pad=12,
    )
    figure.tight_layout()
    return _png(figure)
