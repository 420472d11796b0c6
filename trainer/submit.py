"""Submit a job spec from jobs/ to Vertex AI with the google-cloud-aiplatform client.

  python -m trainer.submit jobs/hptune_mnist.yaml --project P --region us-central1 --bucket B
  python -m trainer.submit jobs/custom_gpu.yaml --project P --region us-central1 --bucket B \
      --image-uri us-central1-docker.pkg.dev/P/trainer/trainer:abc123 --dry-run

The spec is filled in and checked by trainer.jobspec (the same YAML that scripts/submit_job.sh
gives gcloud), wrapped into a CreateCustomJobRequest or a CreateHyperparameterTuningJobRequest
and sent to the region's JobService. --dry-run prints the request as JSON and sends nothing.
Credentials are Application Default Credentials (`gcloud auth application-default login`).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from typing import Any

from trainer.jobspec import CUSTOM, PLACEHOLDERS, JobSpec, SpecError, load_spec, parse_assignments

PROG = "trainer.submit"
CONSOLE = "https://console.cloud.google.com"
_LOCAL_HOSTS = ("localhost",)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Submit a job spec (jobs/*.yaml) to Vertex AI as a CustomJob or a "
        "HyperparameterTuningJob, and print where to follow it.",
    )
    p.add_argument("spec", help="a YAML file from jobs/")
    p.add_argument("--project", required=True, help="Google Cloud project id")
    p.add_argument("--region", required=True, help="Vertex AI region, e.g. us-central1")
    p.add_argument("--bucket", help="bucket for data, package and outputs (fills ${BUCKET})")
    p.add_argument(
        "--image-uri",
        help="training container; fills ${IMAGE_URI} and ${TPU_IMAGE_URI} "
        "(default: the image scripts/build_image.sh pushes)",
    )
    p.add_argument("--display-name", help="job name in the console (default: from the spec)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"fill a placeholder: {', '.join(PLACEHOLDERS)}",
    )
    p.add_argument("--dry-run", action="store_true", help="print the request as JSON, send nothing")
    p.add_argument(
        "--api-endpoint",
        help="JobService host:port (default: REGION-aiplatform.googleapis.com); a loopback "
        "address is reached without TLS or credentials, for a local stand-in service",
    )
    return p


def placeholder_values(args: argparse.Namespace) -> dict[str, str]:
    """Placeholder values from the flags; --set wins over the shortcuts."""
    values = {"PROJECT": args.project, "REGION": args.region}
    if args.bucket:
        values["BUCKET"] = args.bucket
    if args.image_uri:
        values["IMAGE_URI"] = values["TPU_IMAGE_URI"] = args.image_uri
    values.update(parse_assignments(args.set))
    return values


def build_request(spec: JobSpec, project: str, region: str, display_name: str | None) -> Any:
    """The create request for a checked spec."""
    from google.cloud import aiplatform_v1

    parent = f"projects/{project}/locations/{region}"
    message = spec.message()
    if spec.kind == CUSTOM:
        job = aiplatform_v1.CustomJob(
            display_name=display_name or spec.display_name, job_spec=message
        )
        return aiplatform_v1.CreateCustomJobRequest(parent=parent, custom_job=job)
    if display_name:
        message.display_name = display_name
    return aiplatform_v1.CreateHyperparameterTuningJobRequest(
        parent=parent, hyperparameter_tuning_job=message
    )


def request_json(request: Any) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(type(request).pb(request), indent=2)


def is_loopback(endpoint: str) -> bool:
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_client(region: str, api_endpoint: str | None = None) -> Any:
    """A JobServiceClient for the region, or for a local stand-in on a loopback address."""
    from google.cloud import aiplatform_v1

    endpoint = api_endpoint or f"{region}-aiplatform.googleapis.com"
    if is_loopback(endpoint):
        import grpc
        from google.cloud.aiplatform_v1.services.job_service.transports import (
            JobServiceGrpcTransport,
        )

        transport = JobServiceGrpcTransport(channel=grpc.insecure_channel(endpoint))
        return aiplatform_v1.JobServiceClient(transport=transport)
    return aiplatform_v1.JobServiceClient(client_options={"api_endpoint": endpoint})


def create(client: Any, request: Any) -> Any:
    """Send the request; the created job comes back."""
    if type(request).__name__ == "CreateCustomJobRequest":
        return client.create_custom_job(request=request)
    return client.create_hyperparameter_tuning_job(request=request)


def follow_up(job_name: str, kind: str) -> list[str]:
    """Where to watch a created job: the console page and the log stream command."""
    parts = job_name.split("/")  # projects/P/locations/R/{customJobs|hyperparameterTuningJobs}/ID
    project, region, job_id = parts[1], parts[3], parts[5]
    group = "custom-jobs" if kind == CUSTOM else "hp-tuning-jobs"
    return [
        f"console: {CONSOLE}/vertex-ai/locations/{region}/training/{job_id}?project={project}",
        f"logs:    gcloud ai {group} stream-logs {job_id} --project={project} --region={region}",
        f"state:   gcloud ai {group} describe {job_id} --project={project} --region={region}",
    ]


def _fail(status: int, message: str) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = load_spec(args.spec, placeholder_values(args))
        request = build_request(spec, args.project, args.region, args.display_name)
    except SpecError as err:
        return _fail(2, str(err))
    if args.dry_run:
        print(request_json(request))
        return 0
    from google.api_core import exceptions
    from google.auth import exceptions as auth_exceptions

    try:
        job = create(make_client(args.region, args.api_endpoint), request)
    except auth_exceptions.DefaultCredentialsError:
        return _fail(1, "no Google Cloud credentials: run gcloud auth application-default login")
    except exceptions.GoogleAPICallError as err:
        return _fail(1, f"Vertex AI refused the job: {err.code} {err.message}")
    print(f"submitted {job.name} ({job.display_name}): {job.state.name}")
    for line in follow_up(job.name, spec.kind):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
