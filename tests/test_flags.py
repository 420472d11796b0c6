"""Flags and config: parsing, recipe defaults, Vertex environment, bad flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import make_config
from trainer.config import read_cluster
from trainer.flags import parse_flags


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from trainer.flags import parse_flags\n"
        "try:\n    parse_flags(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('tensorflow' in sys.modules, 'tf_keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"
    assert "--hypertune-metric" in out.stdout


@pytest.mark.parametrize("preset", [None, "32"], ids=["default", "environment-wins"])
def test_tensorflow_loads_with_small_gcs_read_blocks(preset: str | None) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "GCS_READ_CACHE_BLOCK_SIZE_MB"}
    if preset:
        env["GCS_READ_CACHE_BLOCK_SIZE_MB"] = preset
    code = (
        "import os\nfrom trainer.keras_api import tf\none = tf.constant(1).numpy()\n"
        "print(os.environ.get('GCS_READ_CACHE_BLOCK_SIZE_MB'), one)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == [preset or "4", "1"]


def test_dash_style_flags_and_recipe_defaults(mnist_dir: str) -> None:
    cfg = make_config(["--data-dir", mnist_dir, "--learning-rate=0.02", "--epochs", "3"])
    assert (cfg.dataset, cfg.model, cfg.learning_rate, cfg.epochs) == ("mnist", "bn_conv", 0.02, 3)
    assert (cfg.batch_size, cfg.lr_decay) == (64, 0.666)  # the codelab's recipe
    flowers = make_config(["--dataset", "flowers", "--train-files", "a.tfrec,b.tfrec"])
    assert flowers.model == "convnet" and flowers.train_files == ("a.tfrec", "b.tfrec")


def test_model_recipes_refine_the_dataset_recipe_and_flags_still_win(mnist_dir: str) -> None:
    def augment(*flags: str) -> bool:
        return make_config(["--data-dir", mnist_dir, *flags]).augment

    assert augment() is True  # bn_conv: the MNIST recipe's shifts and turns
    assert augment("--model", "conv") is True
    assert augment("--model", "dense") is False  # the dense models: trainer/recipes.py
    assert augment("--model", "softmax") is False
    assert augment("--model", "dense", "--augment") is True
    assert make_config(["--data-dir", mnist_dir, "--model", "dense"]).lr_decay == 0.666


def test_output_dirs_follow_vertex_then_job_dir_then_local(mnist_dir: str) -> None:
    env = {
        "AIP_MODEL_DIR": "gs://b/run/model/",
        "AIP_CHECKPOINT_DIR": "gs://b/run/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": "gs://b/run/logs/",
        "CLOUD_ML_TRIAL_ID": "7",
    }
    cfg = make_config(["--data-dir", mnist_dir, "--job-dir", "gs://other"], env)
    assert cfg.model_dir == "gs://b/run/model/"
    assert cfg.checkpoint_dir == "gs://b/run/checkpoints/"
    assert cfg.tensorboard_dir == "gs://b/run/logs/"
    assert cfg.trial_id == "7"
    job = make_config(["--data-dir", mnist_dir, "--job-dir", "gs://jobs/j1/"])
    assert job.model_dir == "gs://jobs/j1/model"
    assert job.checkpoint_dir == "gs://jobs/j1/checkpoints"
    assert job.tensorboard_dir == "gs://jobs/j1/logs"
    local = make_config(["--data-dir", mnist_dir])
    assert (local.model_dir, local.tensorboard_dir) == ("output/model", "output/logs")
    flag = make_config(["--data-dir", mnist_dir, "--model-dir", "/m"], env)
    assert flag.model_dir == "/m"


def test_booleans_take_values_for_tuning_jobs(mnist_dir: str) -> None:
    assert make_config(["--data-dir", mnist_dir, "--augment"]).augment is True
    assert make_config(["--data-dir", mnist_dir, "--augment=false"]).augment is False
    assert make_config(["--data-dir", mnist_dir, "--jit-compile", "true"]).jit_compile is True


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--dataset", "cifar", "--smoke"], "invalid choice: 'cifar'"),
        (["--model", "resnet", "--smoke"], "unknown model 'resnet' for dataset mnist"),
        (["--dataset", "flowers", "--model", "bn_conv", "--smoke"], "unknown model 'bn_conv'"),
        (["--epochs", "-1", "--smoke"], "must be a positive integer, got -1"),
        (["--batch-size", "0", "--smoke"], "must be a positive integer, got 0"),
        (["--learning-rate", "x", "--smoke"], "invalid positive number value: 'x'"),
        (["--data-dir", "/no/such/dir"], "--data-dir /no/such/dir does not exist"),
        (["--eval-split", "1.5", "--smoke"], "must be in [0, 1)"),
        ([], "no data: give --data-dir or --train-files"),
        (["--augment=maybe", "--smoke"], "expected true or false, got maybe"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv: list[str], needle: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_flags(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1


def test_cluster_from_tf_config_and_vertex_cluster_spec() -> None:
    tf_config = '{"cluster": {"worker": ["h0:1", "h1:1"]}, "task": {"type": "worker", "index": 1}}'
    worker = read_cluster({"TF_CONFIG": tf_config})
    assert (worker.worker_count, worker.is_chief) == (2, False)
    worker0 = read_cluster({"TF_CONFIG": tf_config.replace('"index": 1', '"index": 0')})
    assert worker0.is_chief  # no chief pool: worker 0 is the chief
    vertex = (
        '{"cluster": {"workerpool0": ["c:1"], "workerpool1": ["w:1", "w2:1"]}, '
        '"task": {"type": "workerpool1", "index": 0}, "environment": "cloud"}'
    )
    pooled = read_cluster({"CLUSTER_SPEC": vertex})
    assert (pooled.task_type, pooled.worker_count, pooled.is_chief) == ("worker", 3, False)
    chief = read_cluster(
        {"CLUSTER_SPEC": vertex.replace('"workerpool1", "index"', '"workerpool0", "index"')}
    )
    assert chief.is_chief and chief.task_type == "chief"
    assert read_cluster({}).is_chief
