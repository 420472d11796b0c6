"""Learning-rate schedules: pure functions from epoch to learning rate."""

from __future__ import annotations

from collections.abc import Callable


def exponential(learning_rate: float, decay: float, floor: float) -> Callable[[int], float]:
    """The codelab's schedule: learning_rate * decay**epoch, never below floor."""

    def schedule(epoch: int) -> float:
        return max(floor, learning_rate * decay**epoch)

    return schedule


def warmup_exponential(
    start: float, peak: float, warmup_epochs: int, decay: float, floor: float
) -> Callable[[int], float]:
    """Linear ramp from start to peak over warmup_epochs, then exponential decay towards floor.

    The fine-tuning schedule of the flowers codelab: a pretrained backbone is not shaken by
    large early updates, and the decay approaches the floor smoothly, as the codelab's
    `(max_lr - min_lr) * decay**k + min_lr` does.
    """

    def schedule(epoch: int) -> float:
        if epoch < warmup_epochs:
            return start + (peak - start) * epoch / warmup_epochs
        return floor + (peak - floor) * decay ** (epoch - warmup_epochs)

    return schedule


def make_schedule(
    name: str,
    learning_rate: float,
    decay: float,
    floor: float,
    warmup_epochs: int = 0,
    peak: float | None = None,
) -> Callable[[int], float]:
    """The schedule named by --lr-schedule."""
    if name == "exponential":
        return exponential(learning_rate, decay, floor)
    if name == "warmup_exponential":
        return warmup_exponential(learning_rate, peak or learning_rate, warmup_epochs, decay, floor)
    raise ValueError(f"unknown learning-rate schedule {name!r}")
