#!/usr/bin/env bash
# Usage: scripts/build_image.sh --project P --region R [--repo trainer] [--tag TAG] [--tpu]
#                               [--cloud-build] [--dry-run]
# Build the training container and push it to Artifact Registry as
#   REGION-docker.pkg.dev/PROJECT/REPO/trainer:TAG (and :latest); with --tpu, the TPU
#   container from Dockerfile.tpu as .../trainer-tpu:TAG.
# The Docker repository REPO (default: trainer) is created on first use. TAG defaults to the
# git commit (with -dirty for uncommitted changes). --cloud-build builds on Cloud Build
# instead of the local Docker engine.
# --dry-run prints every command without running it.
set -euo pipefail
# shellcheck source=scripts/_common.sh
source "$(dirname "$0")/_common.sh"

project="" region="" repo="trainer" tag="" tpu=0 cloud_build=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --help | -h) usage; exit 0 ;;
    --project) need_value "$@"; project="$2"; shift 2 ;;
    --region) need_value "$@"; region="$2"; shift 2 ;;
    --repo) need_value "$@"; repo="$2"; shift 2 ;;
    --tag) need_value "$@"; tag="$2"; shift 2 ;;
    --tpu) tpu=1; shift ;;
    --cloud-build) cloud_build=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$project" ] || die "--project is required"
[ -n "$region" ] || die "--region is required"
if [ -z "$tag" ]; then
  tag="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || package_version)"
fi

dockerfile="Dockerfile" name="trainer"
if [ "$tpu" = 1 ]; then
  dockerfile="Dockerfile.tpu" name="trainer-tpu"
fi
registry="$region-docker.pkg.dev"
image="$registry/$project/$repo/$name"
cd "$ROOT"

if ! probe gcloud artifacts repositories describe "$repo" \
  --project="$project" --location="$region"; then
  run gcloud artifacts repositories create "$repo" --project="$project" \
    --location="$region" --repository-format=docker \
    --description="trainer training containers"
fi

if [ "$cloud_build" = 1 ]; then
  config="$(mktemp "${TMPDIR:-/tmp}/cloudbuild.XXXXXX.yaml")"
  trap 'rm -f "$config"' EXIT
  # TensorFlow images are large: a bigger builder and a longer timeout than the defaults.
  cat >"$config" <<YAML
steps:
  - name: gcr.io/cloud-builders/docker
    args: [build, -f, $dockerfile, -t, "$image:$tag", -t, "$image:latest", .]
images: ["$image:$tag", "$image:latest"]
options:
  machineType: E2_HIGHCPU_8
timeout: 3600s
YAML
  echo "# $config:"
  sed 's/^/#   /' "$config"
  run gcloud builds submit --project="$project" --region="$region" --config="$config" .
else
  run gcloud auth configure-docker "$registry" --quiet
  # Vertex machines are x86-64: build for that even on an ARM laptop.
  run docker build --platform=linux/amd64 -f "$dockerfile" -t "$image:$tag" -t "$image:latest" .
  run docker push "$image:$tag"
  run docker push "$image:latest"
fi

echo "IMAGE_URI=$image:$tag"
echo "submit with: scripts/submit_job.sh jobs/JOB.yaml --project $project --region $region" \
  "--bucket BUCKET --image-uri $image:$tag"
