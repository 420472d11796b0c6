"""Shared fixtures: tiny generated datasets and a quick way to build configs."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Read when TensorFlow loads: gs:// retries after faults start at 10 ms instead of 1 s.
os.environ.setdefault("GCS_RETRY_CONFIG_INIT_DELAY_TIME_US", "10000")

from trainer.config import Config, build_config
from trainer.flags import parse_flags

pytest_plugins = ["gcs_emulator"]  # fixtures gcs_emulator, gcs_bucket (tests/gcs_emulator.py)

# Environment variables that would change a run's defaults; tests start without them.
VERTEX_ENV = (
    "AIP_MODEL_DIR",
    "AIP_CHECKPOINT_DIR",
    "AIP_TENSORBOARD_LOG_DIR",
    "TF_CONFIG",
    "CLUSTER_SPEC",
    "CLOUD_ML_TRIAL_ID",
    "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in VERTEX_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(tmp_path / "hypertune" / "output.metrics"))


def make_config(argv: Sequence[str], env: dict[str, str] | None = None) -> Config:
    return build_config(parse_flags(list(argv)), env or {})


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> str:
    """The four MNIST IDX files of 320 training and 96 evaluation font digits."""
    from trainer.synthetic import write_mnist_idx

    folder = tmp_path_factory.mktemp("mnist")
    write_mnist_idx(str(folder), 320, 96, seed=1)
    return str(folder)


@pytest.fixture(scope="session")
def flowers_dir(tmp_path_factory) -> str:
    """Five shards of 64x64 synthetic flowers (100 records) in the -2 schema."""
    from trainer.synthetic import write_flower_shards

    folder = tmp_path_factory.mktemp("flowers")
    write_flower_shards(str(folder), 100, 5, size=64, seed=2)
    return str(folder)
