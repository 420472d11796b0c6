"""Learning-rate schedules: pure functions of the epoch."""

from __future__ import annotations

import itertools

import pytest

from trainer.flags import LR_SCHEDULES
from trainer.schedules import exponential, make_schedule, warmup_exponential


def test_exponential_is_the_codelabs_decay_until_the_floor() -> None:
    schedule = exponential(0.01, 0.666, 0.0)
    assert [schedule(k) for k in range(4)] == pytest.approx([0.01 * 0.666**k for k in range(4)])
    floored = exponential(0.01, 0.5, 1e-3)
    assert floored(3) == pytest.approx(1.25e-3)
    assert floored(4) == floored(40) == 1e-3


def test_warmup_ramps_linearly_then_decays_towards_the_floor_like_the_codelab() -> None:
    start, peak, floor, decay, ramp = 1e-5, 5e-5, 1e-5, 0.8, 5
    schedule = warmup_exponential(start, peak, ramp, decay, floor)
    ramp_values = [schedule(k) for k in range(ramp + 1)]
    assert ramp_values[0] == start
    assert ramp_values[ramp] == pytest.approx(peak)
    steps = [b - a for a, b in itertools.pairwise(ramp_values)]
    assert steps == pytest.approx([(peak - start) / ramp] * ramp)
    # The fine-tuning codelab: (max_lr - min_lr) * decay**(epoch - rampup) + min_lr.
    for epoch in range(ramp, ramp + 20):
        expected = (peak - floor) * decay ** (epoch - ramp) + floor
        assert schedule(epoch) == pytest.approx(expected)
        assert schedule(epoch) > floor
    assert schedule(200) == pytest.approx(floor)


def test_no_warmup_starts_at_the_peak() -> None:
    schedule = warmup_exponential(0.001, 0.004, 0, 0.5, 0.0)
    assert schedule(0) == pytest.approx(0.004)
    assert schedule(1) == pytest.approx(0.002)


@pytest.mark.parametrize("name", LR_SCHEDULES)
def test_every_schedule_flag_value_has_a_schedule(name: str) -> None:
    schedule = make_schedule(name, 0.01, 0.9, 1e-4, warmup_epochs=2, peak=0.02)
    values = [schedule(k) for k in range(30)]
    assert all(1e-4 <= v <= 0.02 for v in values)
    assert values[-1] < values[2]


def test_warmup_schedule_from_flags_peaks_at_lr_max() -> None:
    schedule = make_schedule("warmup_exponential", 0.001, 0.8, 0.0, warmup_epochs=3, peak=0.01)
    assert schedule(0) == pytest.approx(0.001)
    assert schedule(3) == pytest.approx(0.01)


def test_unknown_schedule_is_named() -> None:
    with pytest.raises(ValueError, match="cosine"):
        make_schedule("cosine", 0.01, 0.9, 0.0)
