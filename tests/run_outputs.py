"""One small MNIST training run per test session, started the way users start it.

The tests of what a run leaves behind (pictures, run_summary.json, TensorBoard images, log
lines, predictions with the exported model) all read this one run, so it is trained once.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import VERTEX_ENV

# A conv net learns the font digits to about 80% in six short epochs (a tenth of the
# generated digits are blank: two of matplotlib's fonts draw no digits).
# Flags that shape the result are pinned, so recipe changes do not move these tests.
MNIST_FLAGS = ["--model", "conv", "--epochs", "6", "--batch-size", "32", "--cpu"]
MNIST_FLAGS += ["--optimizer", "adam", "--learning-rate", "0.005", "--lr-decay", "0.666"]
MNIST_FLAGS += ["--lr-schedule", "exponential", "--min-learning-rate", "0.0001"]
MNIST_FLAGS += ["--augment=false"]


@dataclass(frozen=True)
class Run:
    status: int
    root: Path
    stdout: str
    stderr: str

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "logs"

    def summary(self) -> dict[str, Any]:
        return json.loads((self.model_dir / "run_summary.json").read_text())

    def json_lines(self) -> list[dict[str, Any]]:
        """The structured log lines of the run, in order."""
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]


_RUNS: dict[tuple[str, ...], Run] = {}


def train(flags: list[str], tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Run:
    """`python -m trainer.task FLAGS --job-dir <tmp>` in this process, output captured."""
    from trainer.task import main

    root = tmp_path_factory.mktemp("run")
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        for name in VERTEX_ENV:
            patch.delenv(name, raising=False)
        patch.setenv("CLOUD_ML_HP_METRIC_FILE", str(root / "hypertune" / "metrics"))
        for name, value in env.items():
            patch.setenv(name, value)
        status = main([*flags, "--job-dir", str(root)])
    return Run(status, root, stdout.getvalue(), stderr.getvalue())


def mnist_run(mnist_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The shared run: trained on the first call, then reused."""
    key = ("mnist", mnist_dir)
    if key not in _RUNS:
        _RUNS[key] = train(["--data-dir", mnist_dir, *MNIST_FLAGS], tmp_path_factory, {})
    return _RUNS[key]
