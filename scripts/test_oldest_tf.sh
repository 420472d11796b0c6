#!/usr/bin/env bash
# Usage: scripts/test_oldest_tf.sh [--setup-only] [--dry-run]
# The test command's second pass: run our code on the oldest TensorFlow that setup.py allows
# (the lower bound of its TF_RANGE: the TensorFlow of Vertex's prebuilt training image that
# jobs/python_package_*.yaml name), installed the way that image installs it:
#   1. .venv-oldest holds only that TensorFlow, on Python 3.10 like the image (made once and
#      reused; VENV_OLDEST moves it, PYTHON_OLDEST picks the interpreter);
#   2. a fresh environment layered on it installs the tf-keras wheel and our sdist with pip,
#      as Vertex installs a spec's packageUris, and must keep that TensorFlow;
#   3. a short smoke training (python -m trainer.task --smoke --cpu --epochs 1), then the
#      exported SavedModel is reloaded with TensorFlow alone and answers a request.
# --setup-only makes (or reuses) .venv-oldest and prints its site-packages folder.
# --dry-run prints every command without running it.
set -euo pipefail
# shellcheck source=scripts/_common.sh
source "$(dirname "$0")/_common.sh"

setup_only=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --help | -h) usage; exit 0 ;;
    --setup-only) setup_only=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

cd "$ROOT"
started=$SECONDS
export TF_CPP_MIN_LOG_LEVEL=2  # TensorFlow's start-up chatter hides the results
tf_minor="$(sed -n 's/^TF_RANGE = ">=\([0-9]*\.[0-9]*\),.*$/\1/p' setup.py)"
[ -n "$tf_minor" ] || die "no TF_RANGE = \">=X.Y,...\" lower bound in setup.py"
base="${VENV_OLDEST:-$ROOT/.venv-oldest}"
stamp="$base/.tensorflow-$tf_minor"

# Python 3.10, the Python of Vertex's prebuilt TensorFlow images.
find_python() {
  if [ -n "${PYTHON_OLDEST:-}" ]; then
    echo "$PYTHON_OLDEST"
    return
  fi
  local candidate
  for candidate in "$HOME"/.pyenv/versions/3.10.*/bin/python3.10 "$(command -v python3.10 || true)"; do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return
    fi
  done
  die "no Python 3.10 found: install one (pyenv install 3.10) or set PYTHON_OLDEST"
}

# The image: that TensorFlow alone (latest patch of the minor version), nothing of ours.
if [ -f "$stamp" ]; then
  echo "# $base: TensorFlow $tf_minor, reused"
else
  run rm -rf "$base"
  run "$(find_python)" -m venv "$base"
  run "$base/bin/python" -m pip install --quiet --upgrade pip
  run "$base/bin/python" -m pip install --quiet "tensorflow~=$tf_minor.0"
  run touch "$stamp"
fi
base_site="$base/lib/python3.10/site-packages"
if [ "$setup_only" = 1 ]; then
  echo "$base_site"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/oldest-tf.XXXXXX")"
trap 'rm -rf "$work"' EXIT
layer="$work/venv"

# What the python-package route installs, built as scripts/stage_package.sh builds it.
PYTHON="$base/bin/python" run bash "$ROOT/scripts/stage_package.sh" --no-upload \
  --dist-dir "$work/dist"
# A clean environment that sees the image's packages, as a prebuilt image's pip does.
run "$base/bin/python" -m venv "$layer"
if [ "$DRY_RUN" = 1 ]; then
  echo "+ echo $base_site > $layer/lib/python3.10/site-packages/image.pth"
else
  echo "$base_site" >"$layer/lib/python3.10/site-packages/image.pth"
fi
# The package URIs of jobs/python_package_*.yaml, in their order. pip must resolve without
# fetching any TensorFlow: on Vertex that would be gigabytes at every job start.
run "$layer/bin/python" -m pip install --progress-bar=off \
  "$work/dist/tf_keras-$tf_minor.0-py3-none-any.whl" \
  "$work/dist/trainer-$(package_version).tar.gz" | tee "$work/pip.log" | { grep -v '^ ' || true; }
if grep -E '(Downloading|Using cached) tensorflow-[0-9]' "$work/pip.log"; then
  die "pip fetched TensorFlow wheels while installing the package (see above)"
fi

# pip must have kept the image's TensorFlow and matched tf-keras to it.
check_versions="
import sys, importlib.metadata as m
want = sys.argv[1]
tf, keras = m.version('tensorflow'), m.version('tf-keras')
print(f'tensorflow {tf}, tf-keras {keras}')
if not (tf.startswith(want + '.') and keras.startswith(want + '.')):
    sys.exit(f'expected TensorFlow and tf-keras {want}.x, got {tf} and {keras}')
"
run "$layer/bin/python" -c "$check_versions" "$tf_minor"

# Outside the source tree, so the installed package is what runs.
run mkdir -p "$work/run"
run cd "$work/run"
run "$layer/bin/python" -m trainer.task --smoke --cpu --epochs 1 --job-dir "$work/job"

# The export must serve with TensorFlow alone, as Vertex prediction loads it.
reload="
import sys, tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']
_, inputs = serve.structured_input_signature
feed = {}
for name, spec in inputs.items():
    shape = [2 if d is None else d for d in spec.shape]
    feed[name] = tf.zeros(shape, spec.dtype) if spec.dtype != tf.string else tf.constant(
        [tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8)).numpy()] * 2)
out = serve(**feed)
print('reloaded with tensorflow', tf.__version__, '->', sorted(out))
"
run "$layer/bin/python" -c "$reload" "$work/job/model"
echo "oldest TensorFlow ($tf_minor) pass: $((SECONDS - started)) s"
