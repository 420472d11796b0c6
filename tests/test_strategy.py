"""Choosing and building strategies; the TPU path up to where hardware is needed; Mirrored
over two logical CPUs end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import make_config
from tests.processes import Jobs
from trainer import accelerators
from trainer.callbacks import TrainingError
from trainer.cluster import training_tasks, worker_outputs
from trainer.config import Cluster, read_cluster
from trainer.strategy import (
    TPU_IO_DEVICE,
    StrategyError,
    check_distribution,
    detect_tpu,
    distribution_name,
    evaluation_steps,
    io_device,
    mirrored_devices,
    resolve_distribution,
    settle_config,
    tpu_attached,
    tpu_resolver_args,
    tpu_strategy,
)

TWO_WORKERS = Cluster(
    task_type="worker",
    task_index=0,
    worker_count=2,
    tf_config=json.dumps(
        {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    ),
)

# ---------------------------------------------------------------------------- auto


@pytest.mark.parametrize(
    ("cluster", "gpus", "tpu_found", "expected"),
    [
        (Cluster(), 0, True, "tpu"),  # a TPU wins over everything
        (TWO_WORKERS, 8, False, "multiworker"),  # several machines, whatever each has
        (Cluster(), 4, False, "mirrored"),
        (Cluster(), 1, False, "mirrored"),  # one GPU: same path (and backups) as several
        (Cluster(), 0, False, "cpu"),
    ],
)
def test_auto_picks_by_what_is_detected(cluster, gpus, tpu_found, expected) -> None:
    assert resolve_distribution("auto", cluster, gpus, tpu_found) == expected


def test_an_explicit_distribution_is_kept() -> None:
    assert resolve_distribution("one_device", TWO_WORKERS, 0, True) == "one_device"


def test_tpu_detection_needs_device_files_and_the_runtime() -> None:
    assert tpu_attached(["/dev/accel0"], libtpu_installed=True)
    assert tpu_attached(["/dev/vfio/0"], libtpu_installed=True)  # v5e / v5p / v6e VMs
    assert not tpu_attached([], libtpu_installed=True)
    assert not tpu_attached(["/dev/accel0"], libtpu_installed=False)
    # A named or addressed TPU node is used without looking at this machine.
    assert detect_tpu("my-tpu-node") and detect_tpu("grpc://10.0.0.2:8470")
    assert not detect_tpu("local")  # this CI machine has no TPU (and answers at once)


def test_impossible_combinations_fail_fast() -> None:
    with pytest.raises(StrategyError, match="--cpu hides accelerators"):
        check_distribution("tpu", cpu_only=True, cluster=Cluster())
    with pytest.raises(StrategyError, match="one TPU host"):
        check_distribution("tpu", cpu_only=False, cluster=TWO_WORKERS)
    check_distribution("multiworker", cpu_only=True, cluster=TWO_WORKERS)


def test_bad_batch_for_the_replicas_fails_naming_the_numbers() -> None:
    from trainer.train import check_batches

    with pytest.raises(TrainingError, match=r"32 .*3 replicas.*multiple of 3"):
        check_batches(32, 3, 320)
    with pytest.raises(TrainingError, match="larger than the 20 training records"):
        check_batches(32, 2, 20)


def test_mirrored_uses_gpus_else_logical_cpus() -> None:
    assert mirrored_devices(["/gpu:0"], ["/cpu:0", "/cpu:1"]) is None  # all GPUs
    assert mirrored_devices([], ["/cpu:0", "/cpu:1"]) == ["/cpu:0", "/cpu:1"]
    assert mirrored_devices([], ["/cpu:0"]) is None


# ---------------------------------------------------------------------------- TPU seams


def test_tpu_flag_defaults_to_local_or_the_ai_platform_tpu_node(mnist_dir: str) -> None:
    argv = ["--data-dir", mnist_dir]
    assert make_config(argv).tpu == "local"  # Vertex TPU VMs: chips attached
    ai_platform = {"KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS": "grpc://10.2.3.4:8470"}
    node = make_config(argv, ai_platform)
    assert node.tpu == "grpc://10.2.3.4:8470" and detect_tpu(node.tpu)
    assert resolve_distribution("auto", node.cluster, 0, detect_tpu(node.tpu)) == "tpu"
    assert make_config([*argv, "--tpu", "my-node"], ai_platform).tpu == "my-node"


def test_tpu_resolver_arguments() -> None:
    assert tpu_resolver_args("local") == {"tpu": "local"}
    assert tpu_resolver_args("") == {"tpu": "local"}
    assert tpu_resolver_args("my-tpu") == {"tpu": "my-tpu"}
    assert tpu_resolver_args(" grpc://10.0.0.2:8470 ") == {"tpu": "grpc://10.0.0.2:8470"}


def test_real_tpu_resolver_takes_those_arguments() -> None:
    from trainer.keras_api import tf

    node = tf.distribute.cluster_resolver.TPUClusterResolver(
        **tpu_resolver_args("grpc://10.0.0.2:8470")
    )
    assert node.master() == "grpc://10.0.0.2:8470"
    assert node.cluster_spec().as_dict() == {"worker": ["10.0.0.2:8470"]}
    vm = tf.distribute.cluster_resolver.TPUClusterResolver(**tpu_resolver_args("local"))
    assert vm.master() == "" and vm.cluster_spec().as_dict() == {}  # chips on this host


class _RecordingTF:
    """Stands in for the TPU calls of TensorFlow, which need TPU hardware to run."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        record = self.calls.append

        def resolver(**kwargs):
            record(("resolver", kwargs))
            return "RESOLVER"

        self.distribute = SimpleNamespace(
            cluster_resolver=SimpleNamespace(TPUClusterResolver=resolver),
            TPUStrategy=lambda r: record(("TPUStrategy", r)) or "STRATEGY",
        )
        self.config = SimpleNamespace(
            experimental_connect_to_cluster=lambda r: record(("connect", r))
        )
        self.tpu = SimpleNamespace(
            experimental=SimpleNamespace(initialize_tpu_system=lambda r: record(("init", r)))
        )


def test_tpu_vm_initializes_without_connecting() -> None:
    api = _RecordingTF()
    assert tpu_strategy("local", api) == "STRATEGY"
    assert api.calls == [
        ("resolver", {"tpu": "local"}),
        ("init", "RESOLVER"),
        ("TPUStrategy", "RESOLVER"),
    ]


def test_tpu_node_connects_first() -> None:
    api = _RecordingTF()
    tpu_strategy("grpc://10.0.0.2:8470", api)
    assert [c[0] for c in api.calls] == ["resolver", "connect", "init", "TPUStrategy"]


CONNECT_LOCAL_TPU = """
from trainer.strategy import StrategyError, connect_tpu
try:
    connect_tpu("local")
except StrategyError as err:
    print("StrategyError:", err)
"""


@pytest.mark.slow
def test_tpu_path_runs_for_real_until_the_hardware_is_missing() -> None:
    with Jobs() as jobs:
        job = jobs.start(["-c", CONNECT_LOCAL_TPU], module=None, name="connect_tpu")
        assert job.finish() == 0, job.tail()
    assert "StrategyError: --distribution tpu: no TPU reachable at --tpu local" in job.output
    assert "Failed in initialization" in job.output  # the resolver was made, init was reached


def test_tpu_defaults_bf16_and_32_steps_per_execution(mnist_dir: str) -> None:
    cfg = make_config(["--data-dir", mnist_dir, "--batch-size", "128"])
    on_tpu = settle_config(cfg, "tpu", "tpu", replicas=8)
    assert on_tpu.distribution == "tpu" and on_tpu.steps_per_execution == 32
    assert accelerators.resolve_policy(cfg.mixed_precision, "tpu") == "mixed_bfloat16"
    mine = make_config(["--data-dir", mnist_dir, "--steps-per-execution", "4"])
    assert settle_config(mine, "tpu", "tpu", 8).steps_per_execution == 4
    assert settle_config(cfg, "cpu", "cpu", 1).steps_per_execution == 1
    assert accelerators.resolve_policy(cfg.mixed_precision, "cpu") == "float32"


def test_tpu_saves_through_the_host_io_device(tmp_path) -> None:
    from trainer.datasets import DATASETS
    from trainer.export import load_serving, save_model
    from trainer.models import ModelOptions, build_model
    from trainer.preemption import checkpoint_options

    assert io_device("tpu") == TPU_IO_DEVICE == "/job:localhost"
    assert io_device("gpu") is None and io_device("cpu") is None
    assert checkpoint_options(io_device("tpu")).experimental_io_device == "/job:localhost"
    # /job:localhost also names this process's host: the same save runs here for real.
    spec = DATASETS["mnist"]
    model = build_model("softmax", spec, 28, ModelOptions())
    save_model(model, spec, 28, str(tmp_path / "m"), io_device=io_device("tpu"))
    out = load_serving(str(tmp_path / "m"))(pixels=np.zeros((2, 28, 28), np.float32))
    assert out["probabilities"].shape == (2, 10)


def test_evaluation_steps_cover_every_record_once(mnist_dir: str) -> None:
    def cfg(*argv: str, env: dict | None = None):
        return make_config(["--data-dir", mnist_dir, *argv], env)

    assert evaluation_steps(cfg("--batch-size", "32"), 96) == 3
    assert evaluation_steps(cfg("--batch-size", "32"), 100) == 4  # last batch partial
    assert evaluation_steps(cfg("--batch-size", "32", "--eval-steps", "2"), 100) == 2
    two = {"TF_CONFIG": TWO_WORKERS.tf_config}
    multi = cfg("--batch-size", "32", "--distribution", "multiworker", env=two)
    assert evaluation_steps(multi, 100) == 4  # 50 records per worker, 16 per batch
    tpu = cfg("--batch-size", "64", "--distribution", "tpu")
    assert evaluation_steps(tpu, 200) == 3  # TPUs drop the partial batch
    with pytest.raises(StrategyError, match="40 evaluation records make no full batch"):
        evaluation_steps(tpu, 40)


# ---------------------------------------------------------------------------- settled config


def test_scale_lr_with_batch_scales_the_whole_schedule(mnist_dir: str) -> None:
    argv = ["--data-dir", mnist_dir, "--batch-size", "256"]
    plain = settle_config(make_config(argv), "cpu", "cpu", 1)
    assert plain.learning_rate == pytest.approx(0.01)
    scaled = settle_config(make_config([*argv, "--scale-lr-with-batch"]), "cpu", "cpu", 1)
    assert scaled.learning_rate == pytest.approx(0.04)  # 256 / the recipe's 64
    assert scaled.lr_max == pytest.approx(0.04)
    assert scaled.min_learning_rate == pytest.approx(4e-4)
    assert not scaled.scale_lr_with_batch  # the written config holds the rates used


def test_distribution_names_of_real_strategies() -> None:
    from trainer.keras_api import tf

    assert distribution_name(tf.distribute.get_strategy()) == "cpu"
    assert distribution_name(tf.distribute.OneDeviceStrategy("/cpu:0")) == "one_device"
    assert distribution_name(tf.distribute.MirroredStrategy(["/cpu:0"])) == "mirrored"


# ---------------------------------------------------------------------------- cluster outputs


def test_training_tasks_list_chief_then_workers() -> None:
    spec = {"cluster": {"worker": ["w0:1", "w1:1"], "chief": ["c:1"], "ps": ["p:1"]}}
    env = {"TF_CONFIG": json.dumps({**spec, "task": {"type": "worker", "index": 1}})}
    assert training_tasks(read_cluster(env)) == ["chief:0", "worker:0", "worker:1"]
    assert training_tasks(Cluster()) == ["chief:0"]


def test_only_the_chief_writes_model_and_logs(mnist_dir: str, tmp_path) -> None:
    chief = make_config(["--data-dir", mnist_dir, "--job-dir", str(tmp_path)])
    with worker_outputs(chief) as cfg:
        assert cfg is chief
    worker_env = {
        "TF_CONFIG": json.dumps(
            {
                "cluster": {"chief": ["c:1"], "worker": ["w:1"]},
                "task": {"type": "worker", "index": 0},
            }
        )
    }
    worker = make_config(["--data-dir", mnist_dir, "--job-dir", str(tmp_path)], worker_env)
    assert not worker.cluster.is_chief
    with pytest.raises(RuntimeError), worker_outputs(worker) as cfg:
        scratch = Path(cfg.model_dir).parent
        assert scratch.is_dir() and str(tmp_path) not in cfg.model_dir + cfg.tensorboard_dir
        assert cfg.checkpoint_dir == worker.checkpoint_dir  # backups are read from the chief's
        raise RuntimeError("a failed run still removes the scratch folder")
    assert not scratch.exists()


# ---------------------------------------------------------------------------- Mirrored, 2 CPUs

MIRRORED_DRIVER = """
import sys
from trainer.strategy import split_cpu
split_cpu(2)  # before TensorFlow sets up its devices
from trainer.task import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_trains_reports_and_exports(mnist_dir, tmp_path) -> None:
    metrics = tmp_path / "hypertune" / "metrics"
    argv = ["--data-dir", mnist_dir, "--job-dir", str(tmp_path / "job"), "--model", "softmax"]
    argv += ["--epochs", "2", "--batch-size", "32", "--distribution", "mirrored", "--cpu"]
    with Jobs() as jobs:
        job = jobs.start(
            ["-c", MIRRORED_DRIVER, *argv],
            env={"CLOUD_ML_HP_METRIC_FILE": str(metrics)},
            module=None,
            name="mirrored",
        )
        assert job.finish() == 0, job.tail()
    assert "strategy mirrored (MirroredStrategy) on cpu: 2 replica(s)" in job.output
    assert "batch 32 = 16 per replica x 2" in job.output
    reports = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(reports) == 3 and all("val_accuracy" in r for r in reports)  # 2 epochs + end

    from trainer.export import load_serving

    model_dir = tmp_path / "job" / "model"
    written = json.loads((model_dir / "config.json").read_text())
    assert written["distribution"] == "mirrored"
    serve = load_serving(str(model_dir))
    pixels, labels = _eval_digits(mnist_dir)
    out = serve(pixels=pixels)
    accuracy = float(np.mean(out["class_ids"].numpy() == labels))
    # The reloaded model scores what the run's evaluation (over both replicas) reported.
    assert accuracy == pytest.approx(float(reports[-1]["val_accuracy"]), abs=1.5 / len(labels))
    assert accuracy > 0.3, accuracy  # 10 classes: chance is 0.1
    assert out["class_names"].numpy()[0].decode() in [str(i) for i in range(10)]


def _eval_digits(mnist_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation digits as float pixels [N, 28, 28] and labels [N], read as plain IDX."""
    images = np.fromfile(f"{mnist_dir}/t10k-images-idx3-ubyte", np.uint8, offset=16)
    labels = np.fromfile(f"{mnist_dir}/t10k-labels-idx1-ubyte", np.uint8, offset=8)
    return images.reshape(-1, 28, 28).astype(np.float32), labels
