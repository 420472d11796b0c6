#!/usr/bin/env bash
# Local smoke run: set up .venv, generate a small dataset, train briefly on CPU, export the
# SavedModel to ./output/model, reload it and predict. Extra flags go to trainer.task
# (e.g. scripts/smoke.sh --dataset flowers).
set -euo pipefail
if [ "${1:-}" = "--help" ]; then
  sed -n '2,4p' "$0" | sed 's/^# //'
  exit 0
fi
cd "$(dirname "$0")/.."
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
python -m trainer.task --smoke --cpu "$@"
