"""Every job spec in jobs/ is right before anyone submits it.

Each spec is filled in and parsed into the real google.cloud.aiplatform_v1 type
(CustomJobSpec or HyperparameterTuningJob) with unknown fields refused; its trainer args go
through the trainer's own flag parser; tuning parameters are trainer flags; and the specs
cover the machines the product promises, with sensible scheduling. The loader's own errors
are checked on broken copies of the specs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from google.cloud import aiplatform_v1

from trainer import jobspec
from trainer.config import build_config
from trainer.flags import build_parser, parse_flags
from trainer.jobspec import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(ROOT.glob("jobs/*.yaml"))
VALUES = {"PROJECT": "my-project", "REGION": "us-central1", "BUCKET": "my-bucket"}


def spec_id(path: Path) -> str:
    return path.stem


def load(path: Path, **extra: str) -> jobspec.JobSpec:
    return load_spec(str(path), {**VALUES, **extra})


def pools(spec: jobspec.JobSpec) -> list[dict]:
    return jobspec.worker_pools(spec.kind, spec.data)


def all_specs() -> dict[str, jobspec.JobSpec]:
    return {path.stem: load(path) for path in SPECS}


def test_there_are_specs_for_every_kind_of_job() -> None:
    names = {path.stem for path in SPECS}
    assert len(names) >= 10, names
    assert any(name.startswith("hptune") for name in names)
    assert any(name.startswith("python_package") for name in names)


# ---------------------------------------------------------------------------- each spec


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_spec_parses_into_the_real_vertex_type(path: Path) -> None:
    spec = load(path)
    message = spec.message()
    if spec.kind == jobspec.HPTUNE:
        assert isinstance(message, aiplatform_v1.HyperparameterTuningJob)
        job_spec = message.trial_job_spec
    else:
        assert isinstance(message, aiplatform_v1.CustomJobSpec)
        job_spec = message
    # Nothing of the YAML was dropped on the way: the message has every pool and arg.
    assert len(job_spec.worker_pool_specs) == len(pools(spec))
    for pool, proto_pool in zip(pools(spec), job_spec.worker_pool_specs, strict=True):
        args = proto_pool.container_spec.args or proto_pool.python_package_spec.args
        assert list(args) == jobspec.pool_args(pool)
    assert "${" not in str(spec.data), "a placeholder was left unfilled"


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_spec_args_pass_the_trainers_parser(path: Path) -> None:
    for pool in pools(load(path)):
        args = jobspec.pool_args(pool)
        assert args, "every pool passes the trainer its data at least"
        parsed = parse_flags(args)  # exits (fails the test) on a flag the trainer rejects
        assert parsed.data_dir.startswith("gs://my-bucket/data/")


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_spec_writes_outputs_to_the_bucket(path: Path) -> None:
    """baseOutputDirectory is what sets AIP_MODEL_DIR; without it the model stays in the VM."""
    spec = load(path)
    job = spec.data["trialJobSpec"] if spec.kind == jobspec.HPTUNE else spec.data
    prefix = job["baseOutputDirectory"]["outputUriPrefix"]
    assert prefix.startswith("gs://my-bucket/runs/")
    assert re.search(r"\d{8}-\d{6}$", prefix), "each run gets its own folder (RUN_ID)"


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_spec_scheduling(path: Path) -> None:
    spec = load(path)
    job = spec.data["trialJobSpec"] if spec.kind == jobspec.HPTUNE else spec.data
    scheduling = job["scheduling"]
    timeout_s = int(scheduling["timeout"].rstrip("s"))
    assert 1800 <= timeout_s <= 6 * 3600
    machines = sum(int(pool["replicaCount"]) for pool in pools(spec))
    if machines > 1:
        assert scheduling.get("restartJobOnWorkerRestart") is True


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_global_batch_divides_over_replicas(path: Path) -> None:
    """The trainer fails fast on a batch that does not split evenly; the specs never do."""
    spec = load(path)
    replicas = 0
    for pool in pools(spec):
        machine = pool["machineSpec"]
        if machine.get("tpuTopology"):
            per_machine = eval_topology(machine["tpuTopology"])
        else:
            per_machine = int(machine.get("acceleratorCount", 1))
        replicas += per_machine * int(pool["replicaCount"])
    args = jobspec.pool_args(pools(spec)[0])
    batch_sizes = [build_config(parse_flags(args), {}).batch_size]
    if spec.kind == jobspec.HPTUNE:
        for parameter in spec.data["studySpec"]["parameters"]:
            if parameter["parameterId"] == "batch-size":
                batch_sizes = [int(v) for v in parameter["discreteValueSpec"]["values"]]
    for batch in batch_sizes:
        assert batch % replicas == 0, f"batch {batch} over {replicas} replicas"


def eval_topology(topology: str) -> int:
    chips = 1
    for side in topology.split("x"):
        chips *= int(side)
    return chips


# ---------------------------------------------------------------------------- the set of specs


def machine_specs(spec: jobspec.JobSpec) -> list[dict]:
    return [pool["machineSpec"] for pool in pools(spec)]


def test_specs_cover_cpu_gpu_multi_gpu_multiworker_tpu_and_spot() -> None:
    specs = all_specs()
    custom = {name: s for name, s in specs.items() if s.kind == jobspec.CUSTOM}

    def has(predicate) -> list[str]:
        return [name for name, s in custom.items() if predicate(s)]

    assert has(lambda s: all("acceleratorType" not in m for m in machine_specs(s)))
    assert has(
        lambda s: (
            len(pools(s)) == 1
            and machine_specs(s)[0].get("acceleratorType", "").startswith("NVIDIA")
            and machine_specs(s)[0]["acceleratorCount"] == 1
        )
    )
    assert has(lambda s: machine_specs(s)[0].get("acceleratorCount", 0) >= 2)
    multiworker = has(lambda s: len(pools(s)) == 2 and pools(s)[1]["replicaCount"] >= 1)
    assert multiworker
    for name in multiworker:
        assert all(m.get("acceleratorType") for m in machine_specs(custom[name]))
    assert has(
        lambda s: (
            machine_specs(s)[0]
            == {"machineType": "cloud-tpu", "acceleratorType": "TPU_V3", "acceleratorCount": 8}
        )
    )
    assert has(
        lambda s: (
            machine_specs(s)[0].get("machineType") == "ct5lp-hightpu-4t"
            and machine_specs(s)[0].get("tpuTopology")
        )
    )
    assert has(lambda s: s.data.get("scheduling", {}).get("strategy") == "SPOT")


def test_every_custom_container_flavour_has_its_image() -> None:
    for name, spec in all_specs().items():
        for pool in pools(spec):
            tpu = pool["machineSpec"]["machineType"] in ("cloud-tpu", "ct5lp-hightpu-4t")
            image = pool.get("containerSpec", {}).get("imageUri")
            if image:
                expected = "trainer-tpu" if tpu else "trainer/trainer:"
                assert expected in image, f"{name}: {image}"
            else:
                assert not tpu, f"{name}: TPU jobs run in the TPU container"


def test_python_package_specs_run_the_sdist_on_the_prebuilt_tensorflow_image() -> None:
    setup = (ROOT / "setup.py").read_text()
    lower = re.search(r'TF_RANGE = ">=(\d+\.\d+),', setup).group(1)
    assert lower == jobspec.PREBUILT_TF, "setup.py's lower bound is the prebuilt image's TF"
    tag = lower.replace(".", "-")
    found = 0
    for name, spec in all_specs().items():
        for pool in pools(spec):
            package = pool.get("pythonPackageSpec")
            if not package:
                continue
            found += 1
            image = package["executorImageUri"]
            assert re.fullmatch(
                rf"us-docker\.pkg\.dev/vertex-ai/training/tf-(cpu|gpu)\.{tag}\.py310:latest",
                image,
            ), f"{name}: {image}"
            assert package["pythonModule"] == "trainer.task"
            assert package["packageUris"] == [
                f"gs://my-bucket/packages/{jobspec.TF_KERAS_WHEEL}",
                "gs://my-bucket/packages/trainer-0.1.0.tar.gz",
            ]
    assert found >= 1


def test_tuning_parameters_are_trainer_flags_and_the_metric_is_what_it_reports() -> None:
    options = {opt for action in build_parser()._actions for opt in action.option_strings}
    default_metric = build_parser().get_default("hypertune_metric")
    tuning = [s for s in all_specs().values() if s.kind == jobspec.HPTUNE]
    assert tuning
    for spec in tuning:
        study = spec.data["studySpec"]
        ids = {p["parameterId"] for p in study["parameters"]}
        assert {"learning-rate", "lr-decay", "dropout", "batch-size"} <= ids
        assert all(f"--{pid}" in options for pid in ids)
        learning_rate = next(p for p in study["parameters"] if p["parameterId"] == "learning-rate")
        assert learning_rate["scaleType"] == "UNIT_LOG_SCALE"
        reported = parse_flags(jobspec.pool_args(pools(spec)[0])).hypertune_metric
        assert reported == default_metric == "val_accuracy"
        assert [m["metricId"] for m in study["metrics"]] == [reported]
        assert spec.data["parallelTrialCount"] <= spec.data["maxTrialCount"]
        for parameter in study["parameters"]:
            for value in jobspec.study_values(parameter):
                parse_flags(
                    [*jobspec.pool_args(pools(spec)[0]), f"--{parameter['parameterId']}={value}"]
                )


def test_discrete_values_in_vertex_spelling_are_accepted() -> None:
    """Vertex passes DISCRETE values as doubles: --batch-size=64.0 must mean 64."""
    assert parse_flags(["--smoke", "--batch-size=64.0"]).batch_size == 64
    assert jobspec.study_values({"discreteValueSpec": {"values": [32, 64]}}) == [
        "32.0",
        "64.0",
        "32",
        "64",
    ]


# ---------------------------------------------------------------------------- placeholders


def test_defaults_derive_from_project_region_and_bucket() -> None:
    spec = load(ROOT / "jobs/custom_gpu.yaml", RUN_ID="run-1")
    container = spec.data["workerPoolSpecs"][0]["containerSpec"]
    assert container["imageUri"] == "us-central1-docker.pkg.dev/my-project/trainer/trainer:latest"
    assert spec.display_name == "trainer-custom-gpu-run-1"
    tpu = load(ROOT / "jobs/custom_tpu_v3.yaml")
    image = tpu.data["workerPoolSpecs"][0]["containerSpec"]["imageUri"]
    assert image == "us-central1-docker.pkg.dev/my-project/trainer/trainer-tpu:latest"


def test_set_values_win_and_gs_prefix_is_accepted() -> None:
    values = jobspec.parse_assignments(["IMAGE_URI=gcr.io/x/y:1", "BUCKET=gs://other/"])
    spec = load_spec(str(ROOT / "jobs/custom_cpu.yaml"), {**VALUES, **values})
    assert spec.data["workerPoolSpecs"][0]["containerSpec"]["imageUri"] == "gcr.io/x/y:1"
    assert "--data-dir=gs://other/data/mnist" in jobspec.pool_args(pools(spec)[0])


def test_values_cannot_change_the_yaml_structure() -> None:
    """Substitution happens on parsed YAML: a value full of YAML syntax stays one string."""
    spec = load(ROOT / "jobs/custom_cpu.yaml", IMAGE_URI="x: [1, 2]\n# y")
    assert spec.data["workerPoolSpecs"][0]["containerSpec"]["imageUri"] == "x: [1, 2]\n# y"


def test_every_placeholder_in_jobs_is_known() -> None:
    for path in SPECS:
        used = jobspec.placeholders_in(yaml.safe_load(path.read_text()))
        assert used <= set(jobspec.PLACEHOLDERS), path
        assert "BUCKET" in used


# ---------------------------------------------------------------------------- bad input


def broken_copy(tmp_path: Path, source: str, old: str, new: str) -> str:
    text = (ROOT / "jobs" / source).read_text()
    assert old in text
    path = tmp_path / source
    path.write_text(text.replace(old, new, 1))
    return str(path)


@pytest.mark.parametrize(
    ("source", "old", "new", "message"),
    [
        ("custom_cpu.yaml", "machineType:", "machineTyp:", 'no field named "machineTyp"'),
        ("custom_gpu.yaml", "NVIDIA_TESLA_T4", "NVIDIA_T4", "Invalid enum value NVIDIA_T4"),
        ("custom_cpu.yaml", "timeout: 7200s", "timeout: 2h", 'Duration must end with letter "s"'),
        ("custom_cpu.yaml", "replicaCount:", "replica_count:", "is not camelCase"),
        ("custom_cpu.yaml", "--dataset=mnist", "--datset=mnist", "unrecognized arguments"),
        ("custom_cpu.yaml", "--dataset=mnist", "--dataset=cifar", "invalid choice"),
        ("custom_cpu.yaml", "${BUCKET}/data", "${BUKET}/data", "unknown placeholder(s) BUKET"),
        ("custom_cpu.yaml", "      args:", "      command: [python]\n      args:", "ENTRYPOINT"),
        ("custom_multiworker.yaml", "replicaCount: 1", "replicaCount: 2", "chief"),
        ("hptune_mnist.yaml", "metricId: val_accuracy", "metricId: accuracy", "not what the"),
        ("hptune_mnist.yaml", "goal: MAXIMIZE", "goal: MINIMIZE", "use MAXIMIZE"),
        ("hptune_mnist.yaml", "parameterId: lr-decay", "parameterId: decay", "not a trainer"),
        ("hptune_mnist.yaml", "maxValue: 0.5", "maxValue: 1.5", "rejects --dropout=1.5"),
        ("hptune_mnist.yaml", "values: [32, 64", "values: [32.5, 64", "--batch-size=32.5"),
        ("hptune_mnist.yaml", "parallelTrialCount: 3", "parallelTrialCount: 30", "larger than"),
        ("hptune_mnist.yaml", "--epochs=6", "--epochs=6\n          - --dropout=0.2", "also fixed"),
        (
            "hptune_mnist.yaml",
            "maxTrialCount: 12",
            "maxTrialCount: 12\nstate: JOB_STATE_QUEUED",
            "set by Vertex",
        ),
    ],
)
def test_broken_specs_fail_with_one_clear_line(
    tmp_path: Path, source: str, old: str, new: str, message: str
) -> None:
    path = broken_copy(tmp_path, source, old, new)
    with pytest.raises(SpecError) as raised:
        load_spec(path, VALUES)
    text = str(raised.value)
    assert message in text
    assert text.startswith(path) or text.startswith("--set")
    assert "\n" not in text


def test_missing_values_are_named() -> None:
    with pytest.raises(SpecError, match=r"no value for BUCKET \(give --set BUCKET=\.\.\.\)"):
        load_spec(
            str(ROOT / "jobs/custom_cpu.yaml"), {"PROJECT": "my-project", "REGION": "us-central1"}
        )


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["BUCKET"], "expected NAME=VALUE"),
        (["=x"], "expected NAME=VALUE"),
        (["NOPE=1"], "unknown placeholder"),
    ],
)
def test_bad_set_values(items: list[str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        jobspec.parse_assignments(items)


@pytest.mark.parametrize(
    ("name", "value"), [("PROJECT", "My Project"), ("REGION", "central"), ("BUCKET", "a/b")]
)
def test_malformed_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(SpecError, match=f"{name}="):
        load(ROOT / "jobs/custom_cpu.yaml", **{name: value})


def test_not_a_job_spec(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="expected a YAML mapping"):
        load_spec(str(path), VALUES)
    path.write_text("displayName: x\n")
    with pytest.raises(SpecError, match="neither a CustomJobSpec"):
        load_spec(str(path), VALUES)
    path.write_text("workerPoolSpecs: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(str(path), VALUES)


# ---------------------------------------------------------------------------- command line


def run_jobspec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer.jobspec", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_check_command_passes_on_every_spec() -> None:
    result = run_jobspec("check", *map(str, SPECS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok  ") == len(SPECS)


def test_render_command_writes_the_spec_and_its_facts(tmp_path: Path) -> None:
    out = tmp_path / "job.yaml"
    sets = ["--set", "PROJECT=my-project", "--set", "REGION=us-central1", "--set", "BUCKET=bkt1"]
    result = run_jobspec(
        "render", "jobs/hptune_mnist.yaml", *sets, "--set", "RUN_ID=r1", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "kind=hptune",
        "displayName=trainer-hptune-mnist-r1",
        "maxTrialCount=12",
        "parallelTrialCount=3",
    ]
    rendered = yaml.safe_load(out.read_text())
    assert rendered["trialJobSpec"]["baseOutputDirectory"]["outputUriPrefix"] == (
        "gs://bkt1/runs/hptune-mnist-r1"
    )


def test_render_command_fails_with_one_line(tmp_path: Path) -> None:
    result = run_jobspec("render", "jobs/custom_cpu.yaml", "--set", "PROJECT=my-project")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("trainer.jobspec: error: jobs/custom_cpu.yaml: no value for")
