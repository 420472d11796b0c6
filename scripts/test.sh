#!/usr/bin/env bash
# The test command: set up .venv with the test extras, check formatting and lint with
# ruff and shellcheck, then run the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
if [ "${1:-}" = "--help" ]; then
  sed -n '2,3p' "$0" | sed 's/^# //'
  exit 0
fi
cd "$(dirname "$0")/.."
export EXTRAS=test
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ruff format --check .
ruff check .
shellcheck scripts/*.sh .ci/run
python -m pytest -q "$@"
bash scripts/test_oldest_tf.sh  # second pass: the oldest TensorFlow that setup.py allows
