#!/usr/bin/env bash
# Usage: scripts/submit_job.sh JOB.yaml --project P --region R --bucket B
#                              [--image-uri URI] [--set NAME=VALUE ...] [--sdk] [--dry-run]
# Submit a job spec from jobs/ to Vertex AI: a custom job (gcloud ai custom-jobs create) or,
# for a spec with a studySpec, a hyperparameter tuning job (gcloud ai hp-tuning-jobs create).
# Placeholders are filled first (python -m trainer.jobspec render): PROJECT, REGION and BUCKET
# from the options, IMAGE_URI (and TPU_IMAGE_URI) from --image-uri or the image that
# scripts/build_image.sh pushes, PACKAGE_URI from scripts/stage_package.sh, RUN_ID from the
# clock; --set fills any of them. The spec is checked against the Vertex API types and the
# trainer's flags before anything is sent.
# --sdk submits with google-cloud-aiplatform (python -m trainer.submit) instead of gcloud.
# --dry-run prints the filled-in spec and every command without running them.
set -euo pipefail
# shellcheck source=scripts/_common.sh
source "$(dirname "$0")/_common.sh"

job_spec="" project="" region="" bucket="" image="" sdk=0 sets=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --help | -h) usage; exit 0 ;;
    --project) need_value "$@"; project="$2"; shift 2 ;;
    --region) need_value "$@"; region="$2"; shift 2 ;;
    --bucket) need_value "$@"; bucket="$2"; shift 2 ;;
    --image-uri) need_value "$@"; image="$2"; shift 2 ;;
    --set) need_value "$@"; sets+=(--set "$2"); shift 2 ;;
    --sdk) sdk=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$job_spec" ] || die "one job spec at a time (got $job_spec and $1)"; job_spec="$1"; shift ;;
  esac
done
[ -n "$job_spec" ] || die "no job spec given (one of jobs/*.yaml)"
[ -f "$job_spec" ] || die "$job_spec: no such file"
[ -n "$project" ] || die "--project is required"
[ -n "$region" ] || die "--region is required"

use_python
values=(--set "PROJECT=$project" --set "REGION=$region")
if [ -n "$bucket" ]; then values+=(--set "BUCKET=$bucket"); fi
if [ -n "$image" ]; then values+=(--set "IMAGE_URI=$image" --set "TPU_IMAGE_URI=$image"); fi
values+=("${sets[@]}")

if [ "$sdk" = 1 ]; then
  dry=()
  if [ "$DRY_RUN" = 1 ]; then dry=(--dry-run); fi
  # trainer.submit prints the request in a dry run itself, so it runs in both cases.
  DRY_RUN=0 run "$PY" -m trainer.submit "$job_spec" --project="$project" --region="$region" \
    "${values[@]}" "${dry[@]}"
  exit 0
fi

# Filling in and checking the spec only reads files, so it runs in a dry run too.
rendered="$(mktemp "${TMPDIR:-/tmp}/job.XXXXXX.yaml")"
trap 'rm -f "$rendered"' EXIT
facts="$("$PY" -m trainer.jobspec render "$job_spec" "${values[@]}" --out "$rendered")"
kind="" name="" max_trials="" parallel_trials=""
while IFS='=' read -r key value; do
  case "$key" in
    kind) kind="$value" ;;
    displayName) name="$value" ;;
    maxTrialCount) max_trials="$value" ;;
    parallelTrialCount) parallel_trials="$value" ;;
  esac
done <<<"$facts"
echo "# $job_spec, filled in ($rendered):"
sed 's/^/#   /' "$rendered"

if [ "$kind" = hptune ]; then
  group="hp-tuning-jobs"
  # gcloud takes these three from flags, whatever the config says.
  run gcloud ai hp-tuning-jobs create --project="$project" --region="$region" \
    --display-name="$name" --max-trial-count="$max_trials" \
    --parallel-trial-count="$parallel_trials" --config="$rendered"
else
  group="custom-jobs"
  run gcloud ai custom-jobs create --project="$project" --region="$region" \
    --display-name="$name" --config="$rendered"
fi
echo "console: https://console.cloud.google.com/vertex-ai/training/$group?project=$project"
echo "logs:    gcloud ai $group stream-logs JOB_ID --project=$project --region=$region"
echo "         (JOB_ID: the number at the end of the job name printed above)"
