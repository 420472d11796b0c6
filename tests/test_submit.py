"""trainer.submit against a stand-in for Vertex's JobService, speaking real gRPC on loopback.

The stand-in is a grpc server with generic handlers for
google.cloud.aiplatform.v1.JobService/CreateCustomJob and CreateHyperparameterTuningJob that
use the real message (de)serializers; trainer.submit's JobServiceClient reaches it through
its gRPC transport. The tests assert on the requests the server received.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from trainer import submit

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "google.cloud.aiplatform.v1.JobService"
BASE = ["--project", "my-project", "--region", "us-central1", "--bucket", "my-bucket"]


@dataclass
class StandInJobService:
    """Records each create request and answers like Vertex: the job, named and pending."""

    requests: list[Any] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    refuse_with: grpc.StatusCode | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, request: Any, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.requests.append(request)
            self.metadata.append(dict(context.invocation_metadata()))
        if self.refuse_with is not None:
            context.abort(self.refuse_with, "quota exceeded for NVIDIA_TESLA_T4 in us-central1")

    def create_custom_job(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record(request, context)
        job = aiplatform_v1.CustomJob(request.custom_job)
        job.name = f"{request.parent}/customJobs/1234567890"
        job.state = aiplatform_v1.JobState.JOB_STATE_PENDING
        return job

    def create_hyperparameter_tuning_job(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record(request, context)
        job = aiplatform_v1.HyperparameterTuningJob(request.hyperparameter_tuning_job)
        job.name = f"{request.parent}/hyperparameterTuningJobs/987654321"
        job.state = aiplatform_v1.JobState.JOB_STATE_QUEUED
        return job

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "CreateCustomJob": grpc.unary_unary_rpc_method_handler(
                    self.create_custom_job,
                    request_deserializer=aiplatform_v1.CreateCustomJobRequest.deserialize,
                    response_serializer=aiplatform_v1.CustomJob.serialize,
                ),
                "CreateHyperparameterTuningJob": grpc.unary_unary_rpc_method_handler(
                    self.create_hyperparameter_tuning_job,
                    request_deserializer=(
                        aiplatform_v1.CreateHyperparameterTuningJobRequest.deserialize
                    ),
                    response_serializer=aiplatform_v1.HyperparameterTuningJob.serialize,
                ),
            },
        )


@dataclass
class Served:
    service: StandInJobService
    endpoint: str


@pytest.fixture
def job_service() -> Iterator[Served]:
    service = StandInJobService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((service.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Served(service, f"127.0.0.1:{port}")
    finally:
        server.stop(grace=None)


def submit_main(served: Served, *args: str) -> int:
    return submit.main([*args, "--api-endpoint", served.endpoint])


# ---------------------------------------------------------------------------- custom jobs


def test_custom_job_reaches_the_job_service(job_service: Served, capsys) -> None:
    image = "us-central1-docker.pkg.dev/my-project/trainer/trainer:abc123"
    status = submit_main(
        job_service, "jobs/custom_gpu.yaml", *BASE, "--image-uri", image, "--set", "RUN_ID=r42"
    )
    assert status == 0
    [request] = job_service.service.requests
    assert isinstance(request, aiplatform_v1.CreateCustomJobRequest)
    assert request.parent == "projects/my-project/locations/us-central1"
    job = request.custom_job
    assert job.display_name == "trainer-custom-gpu-r42"
    [pool] = job.job_spec.worker_pool_specs
    assert pool.container_spec.image_uri == image
    assert "--data-dir=gs://my-bucket/data/flowers" in pool.container_spec.args
    assert pool.machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.NVIDIA_TESLA_T4
    assert pool.machine_spec.accelerator_count == 1
    assert job.job_spec.base_output_directory.output_uri_prefix == (
        "gs://my-bucket/runs/custom-gpu-r42"
    )
    assert job.job_spec.scheduling.timeout.total_seconds() == 7200
    # The client's routing header names the parent, as Vertex's front end expects.
    routing = job_service.service.metadata[0]["x-goog-request-params"]
    assert routing == "parent=projects/my-project/locations/us-central1"
    out = capsys.readouterr().out
    assert "submitted projects/my-project/locations/us-central1/customJobs/1234567890" in out
    assert "JOB_STATE_PENDING" in out
    assert (
        "https://console.cloud.google.com/vertex-ai/locations/us-central1/training/1234567890"
        "?project=my-project" in out
    )
    assert "gcloud ai custom-jobs stream-logs 1234567890" in out


def test_multiworker_and_spot_scheduling_arrive_intact(job_service: Served) -> None:
    assert submit_main(job_service, "jobs/custom_multiworker.yaml", *BASE) == 0
    assert submit_main(job_service, "jobs/custom_gpu_spot.yaml", *BASE) == 0
    multiworker, spot = (r.custom_job.job_spec for r in job_service.service.requests)
    assert [p.replica_count for p in multiworker.worker_pool_specs] == [1, 2]
    assert multiworker.scheduling.restart_job_on_worker_restart is True
    chief, workers = multiworker.worker_pool_specs
    assert list(chief.container_spec.args) == list(workers.container_spec.args)
    assert spot.scheduling.strategy == aiplatform_v1.Scheduling.Strategy.SPOT


def test_tpu_jobs_carry_machine_type_and_topology(job_service: Served) -> None:
    assert submit_main(job_service, "jobs/custom_tpu_v5e.yaml", *BASE) == 0
    assert submit_main(job_service, "jobs/custom_tpu_v3.yaml", *BASE) == 0
    v5e, v3 = (r.custom_job.job_spec.worker_pool_specs[0] for r in job_service.service.requests)
    assert v5e.machine_spec.machine_type == "ct5lp-hightpu-4t"
    assert v5e.machine_spec.tpu_topology == "2x2"
    assert v3.machine_spec.machine_type == "cloud-tpu"
    assert v3.machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.TPU_V3
    assert v3.machine_spec.accelerator_count == 8
    assert v3.container_spec.image_uri.endswith("/trainer/trainer-tpu:latest")


def test_python_package_job_names_the_prebuilt_image_and_the_staged_files(
    job_service: Served,
) -> None:
    assert submit_main(job_service, "jobs/python_package_cpu.yaml", *BASE) == 0
    [request] = job_service.service.requests
    package = request.custom_job.job_spec.worker_pool_specs[0].python_package_spec
    assert package.executor_image_uri == (
        "us-docker.pkg.dev/vertex-ai/training/tf-cpu.2-17.py310:latest"
    )
    assert list(package.package_uris) == [
        "gs://my-bucket/packages/tf_keras-2.17.0-py3-none-any.whl",
        "gs://my-bucket/packages/trainer-0.1.0.tar.gz",
    ]
    assert package.python_module == "trainer.task"


# ---------------------------------------------------------------------------- tuning jobs


def test_tuning_job_reaches_the_job_service(job_service: Served, capsys) -> None:
    status = submit_main(
        job_service, "jobs/hptune_mnist.yaml", *BASE, "--display-name", "my tuning run"
    )
    assert status == 0
    [request] = job_service.service.requests
    assert isinstance(request, aiplatform_v1.CreateHyperparameterTuningJobRequest)
    assert request.parent == "projects/my-project/locations/us-central1"
    job = request.hyperparameter_tuning_job
    assert job.display_name == "my tuning run"
    assert (job.max_trial_count, job.parallel_trial_count, job.max_failed_trial_count) == (12, 3, 3)
    study = job.study_spec
    [metric] = study.metrics
    assert metric.metric_id == "val_accuracy"
    assert metric.goal == aiplatform_v1.StudySpec.MetricSpec.GoalType.MAXIMIZE
    parameters = {p.parameter_id: p for p in study.parameters}
    assert set(parameters) == {"learning-rate", "lr-decay", "dropout", "batch-size"}
    learning_rate = parameters["learning-rate"]
    assert learning_rate.scale_type == (
        aiplatform_v1.StudySpec.ParameterSpec.ScaleType.UNIT_LOG_SCALE
    )
    assert (
        learning_rate.double_value_spec.min_value,
        learning_rate.double_value_spec.max_value,
    ) == (
        0.0003,
        0.03,
    )
    assert list(parameters["batch-size"].discrete_value_spec.values) == [32, 64, 128, 256]
    trial = job.trial_job_spec
    [pool] = trial.worker_pool_specs
    assert pool.container_spec.image_uri == (
        "us-central1-docker.pkg.dev/my-project/trainer/trainer:latest"
    )
    assert "--data-dir=gs://my-bucket/data/mnist" in pool.container_spec.args
    assert trial.base_output_directory.output_uri_prefix.startswith(
        "gs://my-bucket/runs/hptune-mnist-"
    )
    out = capsys.readouterr().out
    assert "hyperparameterTuningJobs/987654321" in out
    assert "gcloud ai hp-tuning-jobs stream-logs 987654321" in out


# ---------------------------------------------------------------------------- failures


def test_a_refusal_is_one_line_and_status_1(job_service: Served, capsys) -> None:
    job_service.service.refuse_with = grpc.StatusCode.RESOURCE_EXHAUSTED
    assert submit_main(job_service, "jobs/custom_gpu.yaml", *BASE) == 1
    err = capsys.readouterr().err
    assert err.startswith("trainer.submit: error: Vertex AI refused the job:")
    assert "quota exceeded for NVIDIA_TESLA_T4" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs/custom_cpu.yaml", "--project", "my-project", "--region", "us-central1"], "BUCKET"),
        (["jobs/custom_cpu.yaml", *BASE, "--set", "BUCKET"], "expected NAME=VALUE"),
        (["jobs/custom_cpu.yaml", *BASE, "--set", "ZONE=a"], "unknown placeholder"),
        (["jobs/nope.yaml", *BASE], "cannot read"),
    ],
)
def test_bad_input_is_refused_before_sending(
    job_service: Served, capsys, args: list[str], message: str
) -> None:
    assert submit_main(job_service, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("trainer.submit: error:") and message in err
    assert err.count("\n") == 1
    assert job_service.service.requests == []


# ---------------------------------------------------------------------------- dry run


def test_dry_run_prints_the_request_and_sends_nothing(job_service: Served) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.submit",
            "jobs/hptune_flowers_gpu.yaml",
            *BASE,
            "--dry-run",
            "--api-endpoint",
            job_service.endpoint,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert job_service.service.requests == []
    printed = json.loads(result.stdout)
    assert printed["parent"] == "projects/my-project/locations/us-central1"
    assert printed["hyperparameterTuningJob"]["studySpec"]["metrics"][0]["metricId"] == (
        "val_accuracy"
    )
    # The JSON is the request itself: it parses back into the real request type.
    request = aiplatform_v1.CreateHyperparameterTuningJobRequest()
    json_format.Parse(result.stdout, request._pb)
    assert request.hyperparameter_tuning_job.max_trial_count == 8


def test_loopback_detection() -> None:
    assert submit.is_loopback("127.0.0.1:8080")
    assert submit.is_loopback("localhost:1")
    assert submit.is_loopback("[::1]:443")
    assert not submit.is_loopback("us-central1-aiplatform.googleapis.com")
    assert not submit.is_loopback("10.0.0.1:443")


def test_missing_credentials_are_one_line(tmp_path: Path) -> None:
    """Without Application Default Credentials the real endpoint is never tried."""
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    # No credential file in HOME, and google-auth's metadata-server probe kept on loopback.
    env.update(
        HOME=str(tmp_path),
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
    )
    result = subprocess.run(
        [sys.executable, "-m", "trainer.submit", "jobs/custom_cpu.yaml", *BASE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "trainer.submit: error: no Google Cloud credentials: "
        "run gcloud auth application-default login\n"
    )
