"""Print an installed distribution's requirements, one a line, leaving out some by name.

  python scripts/requirements_except.py trainer tensorflow tf-keras > requirements.txt

Dockerfile.tpu installs the package with --no-deps (its `tensorflow` requirement is met by
tensorflow-tpu, which pip cannot know) and then these: everything else the package needs.
Extras' requirements are left out too.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Sequence


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_except(distribution: str, excluded: Sequence[str]) -> list[str]:
    """Requirements of an installed distribution, without extras' and the excluded names."""
    skip = {canonical(name) for name in excluded}
    kept = []
    for requirement in importlib.metadata.requires(distribution) or []:
        if "extra ==" in requirement.replace('"', "").replace("'", ""):
            continue
        name = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
        if canonical(name) not in skip:
            kept.append(requirement)
    return kept


def main(argv: Sequence[str]) -> int:
    if len(argv) < 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    try:
        kept = requirements_except(argv[0], argv[1:])
    except importlib.metadata.PackageNotFoundError:
        print(f"requirements_except.py: error: {argv[0]} is not installed", file=sys.stderr)
        return 2
    print("\n".join(kept))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
