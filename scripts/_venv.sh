#!/usr/bin/env bash
# Sourced by the other scripts: make (once) and activate the project's virtual environment.
# VENV overrides its location; EXTRAS picks the setup.py extras to install.
set -euo pipefail

_trainer_venv() {
  local root venv stamp spec
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="${VENV:-$root/.venv}"
  stamp="$venv/.installed-${EXTRAS:-base}"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  # Reinstall only when setup.py changed since the last install into this environment.
  if [ ! -f "$stamp" ] || [ "$root/setup.py" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    spec="$root"
    if [ -n "${EXTRAS:-}" ]; then spec="${root}[${EXTRAS}]"; fi
    "$venv/bin/python" -m pip install --quiet -e "$spec"
    touch "$stamp"
  fi
  # shellcheck disable=SC1091
  source "$venv/bin/activate"
}
_trainer_venv
unset -f _trainer_venv
