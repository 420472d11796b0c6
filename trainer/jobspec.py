"""Vertex job specs (jobs/*.yaml): placeholders filled in, checked against the real API types.

A spec is the YAML that gcloud takes with `--config`: a CustomJobSpec for
`gcloud ai custom-jobs create`, or a HyperparameterTuningJob for `gcloud ai hp-tuning-jobs
create` (told apart by its `studySpec`). Placeholders such as `${BUCKET}` are filled from
`--set NAME=VALUE` and from defaults derived from the project, region and bucket, so nobody
edits a spec by hand to submit it.

Loading a spec proves it right before anything is sent:
  - every field is a field of `google.cloud.aiplatform_v1`: an unknown or misspelt field
    fails here (gcloud lets some through to the API), and keys are camelCase, the spelling
    gcloud's --config reads;
  - every trainer `args` list passes the trainer's own flag parser;
  - every tuning `parameterId` is a trainer flag that accepts every value the study can pick,
    and the `metricId` is the metric the trainer reports (its --hypertune-metric).

  python -m trainer.jobspec render jobs/hptune_mnist.yaml --set PROJECT=p --set REGION=us-central1 \
      --set BUCKET=b
  python -m trainer.jobspec check jobs/*.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer import __version__

PROG = "trainer.jobspec"
CUSTOM = "custom"
HPTUNE = "hptune"

# The TensorFlow of Vertex's prebuilt training image that jobs/python_package_*.yaml run on
# (tf-cpu.2-17.py310, tf-gpu.2-17.py310): setup.py's lower bound, and the TensorFlow of the
# test command's second pass (scripts/test_oldest_tf.sh). The specs install the matching
# tf-keras wheel (scripts/stage_package.sh stages it) before the package.
PREBUILT_TF = "2.17"
TF_KERAS_WHEEL = f"tf_keras-{PREBUILT_TF}.0-py3-none-any.whl"

# Every placeholder a spec may use, with what fills it.
PLACEHOLDERS = {
    "PROJECT": "Google Cloud project id (required)",
    "REGION": "Vertex AI region, e.g. us-central1 (required)",
    "BUCKET": "Cloud Storage bucket for data, packages and outputs, without gs:// (required)",
    "IMAGE_URI": "training container (default: REGION-docker.pkg.dev/PROJECT/trainer/trainer)",
    "TPU_IMAGE_URI": "TPU training container (default: .../trainer/trainer-tpu)",
    "PACKAGE_URI": f"staged sdist (default: gs://BUCKET/packages/trainer-{__version__}.tar.gz)",
    "TF_KERAS_URI": f"staged tf-keras wheel (default: gs://BUCKET/packages/{TF_KERAS_WHEEL})",
    "RUN_ID": "suffix that keeps runs apart (default: UTC time, YYYYmmdd-HHMMSS)",
}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]*)\}")
_CHECKED_VALUES = {  # name: (pattern, what a valid value is)
    "PROJECT": (r"[a-z][a-z0-9-]{4,28}[a-z0-9]", "project id"),
    "REGION": (r"[a-z]+-[a-z]+[0-9]+", "region such as us-central1"),
    "BUCKET": (r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", "bucket name"),
    "RUN_ID": (r"[a-z0-9][a-z0-9-]{0,40}", "run id (lowercase letters, digits and dashes)"),
}
_CAMEL_KEY = re.compile(r"[a-z][a-zA-Z0-9]*")
_FREE_KEYS = ("labels",)  # maps whose keys are the user's own, not API field names
_OUTPUT_ONLY = ("name", "state", "trials", "createTime", "startTime", "endTime", "updateTime")


class SpecError(ValueError):
    """A spec, or a value for it, that cannot work; the message names the file and the cause."""


@dataclass(frozen=True)
class JobSpec:
    """One spec with its placeholders filled in."""

    path: str
    kind: str  # CUSTOM or HPTUNE
    data: dict[str, Any]  # the YAML document, substituted
    display_name: str

    def message(self) -> Any:
        """The spec as its aiplatform_v1 type: CustomJobSpec or HyperparameterTuningJob."""
        return to_message(self.kind, self.data, self.path)


# ---------------------------------------------------------------------------- placeholders


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """`NAME=VALUE` strings (from --set) as a dict; a malformed one is a SpecError."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SpecError(f"--set {item!r}: expected NAME=VALUE, e.g. --set BUCKET=my-bucket")
        if name not in PLACEHOLDERS:
            raise SpecError(f"--set {name}: unknown placeholder; known: {', '.join(PLACEHOLDERS)}")
        values[name] = value.strip()
    return values


def normalize_values(values: Mapping[str, str]) -> dict[str, str]:
    """Drop empty values, accept gs://bucket for BUCKET, and check the shape of each value."""
    out = {k: v for k, v in values.items() if v}
    if "BUCKET" in out:
        out["BUCKET"] = out["BUCKET"].removeprefix("gs://").rstrip("/")
    for name, (pattern, what) in _CHECKED_VALUES.items():
        if name in out and not re.fullmatch(pattern, out[name]):
            raise SpecError(f"{name}={out[name]!r} is not a valid {what}")
    return out


def with_defaults(values: Mapping[str, str], now: float | None = None) -> dict[str, str]:
    """The given values plus the defaults that derive from them."""
    out = normalize_values(values)
    defaults: dict[str, str] = {
        "RUN_ID": time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)),
    }
    if "PROJECT" in out and "REGION" in out:
        registry = f"{out['REGION']}-docker.pkg.dev/{out['PROJECT']}/trainer"
        defaults["IMAGE_URI"] = f"{registry}/trainer:latest"
        defaults["TPU_IMAGE_URI"] = f"{registry}/trainer-tpu:latest"
    if "BUCKET" in out:
        packages = f"gs://{out['BUCKET']}/packages"
        defaults["PACKAGE_URI"] = f"{packages}/trainer-{__version__}.tar.gz"
        defaults["TF_KERAS_URI"] = f"{packages}/{TF_KERAS_WHEEL}"
    return {**defaults, **out}


def placeholders_in(data: Any) -> set[str]:
    """Names of the ${...} placeholders in the strings of a parsed YAML document."""
    return {m.group(1) for text in _strings(data) for m in _PLACEHOLDER.finditer(text)}


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)


def substitute(data: Any, values: Mapping[str, str]) -> Any:
    """Fill the placeholders in every string; done on parsed YAML so no value can change its
    structure."""
    if isinstance(data, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], data)
    if isinstance(data, dict):
        return {key: substitute(value, values) for key, value in data.items()}
    if isinstance(data, list):
        return [substitute(item, values) for item in data]
    return data


# ---------------------------------------------------------------------------- loading


def read_yaml(path: str) -> dict[str, Any]:
    """The YAML document of a spec file, which must be one mapping."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as err:
        raise SpecError(f"{path}: cannot read: {err.strerror}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a YAML mapping (a CustomJobSpec or an HP tuning job)")
    return data


def spec_kind(data: Mapping[str, Any], path: str) -> str:
    if "studySpec" in data or "trialJobSpec" in data:
        return HPTUNE
    if "workerPoolSpecs" in data:
        return CUSTOM
    raise SpecError(
        f"{path}: neither a CustomJobSpec (workerPoolSpecs) nor a HyperparameterTuningJob "
        "(studySpec, trialJobSpec)"
    )


def default_display_name(path: str, run_id: str) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", Path(path).stem.lower()).strip("-")
    return f"trainer-{stem}-{run_id}"


def load_spec(path: str, values: Mapping[str, str], now: float | None = None) -> JobSpec:
    """Read, fill in and check one spec; every failure is a one-line SpecError."""
    raw = read_yaml(path)
    filled = with_defaults(values, now)
    used = placeholders_in(raw)
    unknown = sorted(used - set(PLACEHOLDERS))
    if unknown:
        raise SpecError(f"{path}: unknown placeholder(s) {', '.join(unknown)}")
    missing = sorted(used - set(filled))
    if missing:
        flags = " ".join(f"--set {name}=..." for name in missing)
        raise SpecError(f"{path}: no value for {', '.join(missing)} (give {flags})")
    data = substitute(raw, filled)
    kind = spec_kind(data, path)
    check_keys(data, path)
    to_message(kind, data, path)
    check_trainer_args(kind, data, path)
    name = data.get("displayName") or default_display_name(path, filled["RUN_ID"])
    return JobSpec(path=path, kind=kind, data=data, display_name=name)


def check_keys(data: Any, path: str, where: str = "") -> None:
    """camelCase keys, as gcloud's --config needs (the API alone would also take snake_case),
    and no output-only fields."""
    if isinstance(data, list):
        for i, item in enumerate(data):
            check_keys(item, path, f"{where}[{i}]")
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        here = f"{where}.{key}" if where else str(key)
        if not where and key in _OUTPUT_ONLY:
            raise SpecError(f"{path}: {key} is set by Vertex AI, not by a spec")
        if not isinstance(key, str) or not _CAMEL_KEY.fullmatch(key):
            raise SpecError(f"{path}: key {here!r} is not camelCase (gcloud reads camelCase)")
        if key not in _FREE_KEYS:
            check_keys(value, path, here)


def to_message(kind: str, data: Mapping[str, Any], path: str) -> Any:
    """Parse into the real API type; an unknown field or enum value fails with its location."""
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    message = (
        aiplatform_v1.HyperparameterTuningJob() if kind == HPTUNE else aiplatform_v1.CustomJobSpec()
    )
    try:
        json_format.ParseDict(dict(data), message._pb, ignore_unknown_fields=False)
    except json_format.ParseError as err:
        raise SpecError(f"{path}: {_parse_error_text(err)}") from err
    _check_required(kind, message, path)
    return message


def _parse_error_text(err: Exception) -> str:
    text = re.sub(r"Failed to parse \w+ field: ", "", str(err))
    text = text.replace("Available Fields(except extensions):", "available fields:")
    return " ".join(text.split()).rstrip(".")


def _check_required(kind: str, message: Any, path: str) -> None:
    """What the API would refuse later, said now."""
    if kind == HPTUNE:
        for field in ("display_name", "max_trial_count", "parallel_trial_count"):
            if not getattr(message, field):
                raise SpecError(f"{path}: {_camel(field)} is required")
        if not message.study_spec.metrics or not message.study_spec.parameters:
            raise SpecError(f"{path}: studySpec needs metrics and parameters")
        if message.parallel_trial_count > message.max_trial_count:
            raise SpecError(f"{path}: parallelTrialCount is larger than maxTrialCount")
        pools = message.trial_job_spec.worker_pool_specs
    else:
        pools = message.worker_pool_specs
    if not pools:
        raise SpecError(f"{path}: no workerPoolSpecs")
    for i, pool in enumerate(pools):
        where = f"{path}: workerPoolSpecs[{i}]"
        if not pool.machine_spec.machine_type or pool.replica_count < 1:
            raise SpecError(f"{where} needs machineSpec.machineType and replicaCount >= 1")
        has_container = bool(pool.container_spec.image_uri)
        has_package = bool(pool.python_package_spec.executor_image_uri)
        if has_container == has_package:
            raise SpecError(f"{where} needs exactly one of containerSpec and pythonPackageSpec")
    if pools[0].replica_count != 1:
        raise SpecError(f"{path}: the first worker pool (the chief) must have replicaCount 1")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.title() for word in rest)


# ---------------------------------------------------------------------------- trainer args


def worker_pools(kind: str, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    job = data.get("trialJobSpec", {}) if kind == HPTUNE else data
    return list(job.get("workerPoolSpecs", []))


def pool_args(pool: Mapping[str, Any]) -> list[str]:
    """The trainer's arguments in a worker pool, as Vertex passes them."""
    spec = pool.get("containerSpec") or pool.get("pythonPackageSpec") or {}
    return [str(arg) for arg in spec.get("args", [])]


def parse_trainer_args(args: Sequence[str]) -> tuple[argparse.Namespace | None, str]:
    """Run the trainer's own parser; (namespace, "") or (None, its one-line error)."""
    from trainer.flags import parse_flags

    stderr, stdout = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            return parse_flags(list(args)), ""
    except SystemExit as exit_:
        message = stderr.getvalue().strip().splitlines() or [f"exit status {exit_.code}"]
        return None, message[-1]


def check_trainer_args(kind: str, data: Mapping[str, Any], path: str) -> None:
    for i, pool in enumerate(worker_pools(kind, data)):
        where = f"{path}: workerPoolSpecs[{i}]"
        package = pool.get("pythonPackageSpec")
        if package and package.get("pythonModule") != "trainer.task":
            raise SpecError(f"{where}: pythonModule must be trainer.task")
        if pool.get("containerSpec", {}).get("command"):
            raise SpecError(f"{where}: containerSpec.command would bypass the image's ENTRYPOINT")
        args = pool_args(pool)
        parsed, error = parse_trainer_args(args)
        if parsed is None:
            raise SpecError(f"{where}: args rejected by the trainer: {error}")
        if kind == HPTUNE:
            check_study(data["studySpec"], args, parsed, where)


def trainer_options() -> set[str]:
    """Every long option of `python -m trainer.task`."""
    from trainer.flags import build_parser

    return {opt for action in build_parser()._actions for opt in action.option_strings}


def study_values(parameter: Mapping[str, Any]) -> list[str]:
    """Values a tuning study can pass for a parameter, spelled as Vertex may spell them."""
    if "doubleValueSpec" in parameter:
        spec = parameter["doubleValueSpec"]
        return [repr(float(spec["minValue"])), repr(float(spec["maxValue"]))]
    if "integerValueSpec" in parameter:
        spec = parameter["integerValueSpec"]
        return [str(int(spec["minValue"])), str(int(spec["maxValue"]))]
    if "discreteValueSpec" in parameter:
        # Discrete values are doubles in the API: accept both 64 and 64.0.
        values = [float(v) for v in parameter["discreteValueSpec"]["values"]]
        return [repr(v) for v in values] + [str(int(v)) for v in values if v.is_integer()]
    if "categoricalValueSpec" in parameter:
        return [str(v) for v in parameter["categoricalValueSpec"]["values"]]
    return []


def check_study(
    study: Mapping[str, Any], args: Sequence[str], parsed: argparse.Namespace, where: str
) -> None:
    """Parameters are trainer flags that take every value; the metric is what the trainer
    reports."""
    options = trainer_options()
    fixed = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
    for parameter in study.get("parameters", []):
        flag = f"--{parameter['parameterId']}"
        if flag not in options:
            raise SpecError(f"{where}: parameterId {flag[2:]} is not a trainer flag (--help)")
        if flag in fixed:
            raise SpecError(f"{where}: parameterId {flag[2:]} is also fixed in args")
        for value in study_values(parameter):
            if parse_trainer_args([*args, f"{flag}={value}"])[0] is None:
                raise SpecError(f"{where}: the trainer rejects {flag}={value} from the study")
    for metric in study.get("metrics", []):
        if metric.get("metricId") != parsed.hypertune_metric:
            raise SpecError(
                f"{where}: metricId {metric.get('metricId')} is not what the trainer reports "
                f"(--hypertune-metric {parsed.hypertune_metric})"
            )
        goal = metric.get("goal")
        wants = "MINIMIZE" if "loss" in parsed.hypertune_metric else "MAXIMIZE"
        if goal != wants:
            raise SpecError(f"{where}: goal {goal} for {metric.get('metricId')}; use {wants}")


# ---------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Fill in and check Vertex job specs (jobs/*.yaml).",
        epilog="placeholders: "
        + "; ".join(f"{name}: {text}" for name, text in PLACEHOLDERS.items()),
    )
    sub = p.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="print (or write) a spec with placeholders filled")
    render.add_argument("spec", help="a YAML file from jobs/")
    render.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    render.add_argument("--format", choices=("yaml", "json"), default="yaml")
    render.add_argument(
        "--out",
        help="write the spec here and print kind=, displayName=, maxTrialCount= and "
        "parallelTrialCount= lines instead (for scripts/submit_job.sh)",
    )
    check = sub.add_parser("check", help="check specs with example values for the placeholders")
    check.add_argument("specs", nargs="+")
    return p


EXAMPLE_VALUES = {"PROJECT": "example-project", "REGION": "us-central1", "BUCKET": "example"}


def dump(data: Any, fmt: str) -> str:
    import yaml

    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def render(args: argparse.Namespace) -> None:
    spec = load_spec(args.spec, parse_assignments(args.set))
    if not args.out:
        sys.stdout.write(dump(spec.data, args.format))
        return
    Path(args.out).write_text(dump(spec.data, args.format))
    print(f"kind={spec.kind}")
    print(f"displayName={spec.display_name}")
    if spec.kind == HPTUNE:
        print(f"maxTrialCount={spec.data['maxTrialCount']}")
        print(f"parallelTrialCount={spec.data['parallelTrialCount']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "render":
            render(args)
        else:
            for path in args.specs:
                spec = load_spec(path, EXAMPLE_VALUES)
                print(f"ok  {path} ({spec.kind})")
    except SpecError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
