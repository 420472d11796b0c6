#!/usr/bin/env bash
# Sourced by the Vertex scripts: --dry-run handling, one-line errors, and the Python to use.
# DRY_RUN=1 makes `run` print each command (shell-quoted, after "+ ") instead of running it.
set -euo pipefail

DRY_RUN="${DRY_RUN:-0}"
SCRIPT_NAME="$(basename "$0")"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Print a one-line error and leave with status 2 (bad arguments or input).
die() {
  echo "$SCRIPT_NAME: error: $*" >&2
  exit 2
}

# Show a command; run it unless this is a dry run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [ "$DRY_RUN" = 1 ]; then
    return 0
  fi
  "$@"
}

# Like run, for a look-up whose failure decides what comes next: in a dry run it reports
# failure, so the commands of the "not there yet" branch are shown too.
probe() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [ "$DRY_RUN" = 1 ]; then
    return 1
  fi
  "$@" >/dev/null 2>&1
}

# The value of an option that takes one: fails clearly when it is missing.
need_value() {
  [ "$#" -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || die "$1 needs a value"
}

# Print the usage block: the comment lines after the shebang, without their "# ".
usage() {
  sed -n '2,/^[^#]/p' "$0" | sed -e '/^[^#]/d' -e 's/^# \{0,1\}//'
}

# The Python that runs trainer modules: $PYTHON when set, else the project's .venv (made on
# first use, with the submit extras).
# shellcheck disable=SC2034  # PY is read by the scripts that source this file
use_python() {
  if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
  else
    # shellcheck source=scripts/_venv.sh disable=SC1091  # checked on its own
    EXTRAS=submit source "$ROOT/scripts/_venv.sh"
    PY=python
  fi
}

# The package version, read from trainer/__init__.py without importing anything.
package_version() {
  sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/trainer/__init__.py"
}
