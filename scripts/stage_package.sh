#!/usr/bin/env bash
# Usage: scripts/stage_package.sh --bucket B [--prefix packages] [--dist-dir dist]
#                                 [--no-upload] [--dry-run]
# Build what the python-package route installs, and upload it to gs://B/PREFIX/ with
# google-cloud-storage, each file's checksum verified (python -m trainer.staging):
#   dist/trainer-VERSION.tar.gz          the package's sdist (${PACKAGE_URI} in the specs)
#   dist/tf_keras-X.Y.0-py3-none-any.whl tf-keras for the prebuilt image's TensorFlow X.Y
#                                        (${TF_KERAS_URI}), installed first, so that pip
#                                        keeps the image's TensorFlow without trying (and
#                                        downloading) every newer one
# X.Y is the lower bound of TF_RANGE in setup.py, the TensorFlow of the prebuilt image that
# jobs/python_package_*.yaml name. --no-upload only builds (no --bucket needed).
# --dry-run prints every command without running it.
set -euo pipefail
# shellcheck source=scripts/_common.sh
source "$(dirname "$0")/_common.sh"

bucket="" prefix="packages" dist="dist" upload=1
while [ "$#" -gt 0 ]; do
  case "$1" in
    --help | -h) usage; exit 0 ;;
    --bucket) need_value "$@"; bucket="${2#gs://}"; bucket="${bucket%/}"; shift 2 ;;
    --prefix) need_value "$@"; prefix="${2%/}"; shift 2 ;;
    --dist-dir) need_value "$@"; dist="${2%/}"; shift 2 ;;
    --no-upload) upload=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$bucket" ] || [ "$upload" = 0 ] || die "--bucket is required (or --no-upload)"

cd "$ROOT"
tf_minor="$(sed -n 's/^TF_RANGE = ">=\([0-9]*\.[0-9]*\),.*$/\1/p' setup.py)"
[ -n "$tf_minor" ] || die "no TF_RANGE = \">=X.Y,...\" lower bound in setup.py"
sdist="$dist/trainer-$(package_version).tar.gz"
wheel="$dist/tf_keras-$tf_minor.0-py3-none-any.whl"

use_python
run "$PY" setup.py -q sdist --dist-dir "$dist"
run "$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$dist" \
  "tf-keras==$tf_minor.0"
if [ "$upload" = 1 ]; then
  run "$PY" -m trainer.staging "$wheel" "$sdist" "gs://$bucket/$prefix/"
  echo "TF_KERAS_URI=gs://$bucket/$prefix/$(basename "$wheel")"
  echo "PACKAGE_URI=gs://$bucket/$prefix/$(basename "$sdist")"
else
  echo "built $wheel $sdist"
fi
