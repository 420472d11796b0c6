"""The training containers (Dockerfile, Dockerfile.tpu) without a Docker engine.

hadolint lints both files. The Dockerfile's install steps then run for real: its build
context (the files it COPYs, filtered by .dockerignore) goes into a folder, and a clean
virtual environment that sees a TensorFlow installation, as the image's Python sees the
TensorFlow layer, runs the Dockerfile's own `pip install` line from that folder. The
trainer's --help and a smoke run then work from the installed package.

The TensorFlow under that environment is the oldest supported one (.venv-oldest, made by
scripts/test_oldest_tf.sh): one TensorFlow installation serves both checks, and the install
steps are the same whatever TensorFlow version lies under them. The newest TensorFlow, which
the Dockerfile pins, is the one the rest of the test suite runs on.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = ["Dockerfile", "Dockerfile.tpu"]
HADOLINT = Path(sys.executable).with_name("hadolint")


def instructions(name: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in (ROOT / name).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def args_of(name: str, keyword: str) -> list[str]:
    return [args for key, args in instructions(name) if key == keyword]


def arg_default(name: str, arg: str) -> str:
    for value in args_of(name, "ARG"):
        key, _, default = value.partition("=")
        if key == arg:
            return default
    raise AssertionError(f"{name} has no ARG {arg}")


def tf_range() -> tuple[tuple[int, int], tuple[int, int]]:
    match = re.search(r'TF_RANGE = ">=(\d+)\.(\d+),<(\d+)\.(\d+)"', (ROOT / "setup.py").read_text())
    assert match, "setup.py: TF_RANGE"
    low_major, low_minor, high_major, high_minor = map(int, match.groups())
    return (low_major, low_minor), (high_major, high_minor)


def minor(version: str) -> tuple[int, int]:
    major, minor_, *_ = version.split(".")
    return int(major), int(minor_)


# ---------------------------------------------------------------------------- lint and facts


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name: str) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", name], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_container_runs_the_trainer_as_an_unprivileged_user(name: str) -> None:
    assert args_of(name, "ENTRYPOINT") == ['["python", "-m", "trainer.task"]']
    [user] = args_of(name, "USER")
    assert user.split(":")[0] not in ("0", "root")
    position = [key for key, _ in instructions(name)]
    assert position.index("USER") > max(i for i, key in enumerate(position) if key == "RUN")
    [base] = args_of(name, "FROM")
    assert base == "python:${PYTHON_VERSION}-slim-bookworm"
    assert re.fullmatch(r"3\.1[0-3]", arg_default(name, "PYTHON_VERSION"))


@pytest.mark.parametrize(
    ("name", "tf_arg"), [("Dockerfile", "TF_VERSION"), ("Dockerfile.tpu", "TF_TPU_VERSION")]
)
def test_tensorflow_is_pinned_inside_the_tested_range(name: str, tf_arg: str) -> None:
    tf_version = arg_default(name, tf_arg)
    keras_version = arg_default(name, "TF_KERAS_VERSION")
    assert re.fullmatch(r"\d+\.\d+\.\d+", tf_version) and re.fullmatch(
        r"\d+\.\d+\.\d+", keras_version
    )
    low, high = tf_range()
    assert low <= minor(tf_version) < high, f"{tf_version} outside setup.py's TF_RANGE"
    assert minor(keras_version) == minor(tf_version), "tf-keras follows TensorFlow's minor version"
    runs = " ".join(args_of(name, "RUN"))
    assert f"==${{{tf_arg}}}" in runs
    assert "tf-keras==${TF_KERAS_VERSION}" in runs


def test_the_tpu_container_has_tpu_tensorflow_and_libtpu_in_lib() -> None:
    runs = " ".join(args_of("Dockerfile.tpu", "RUN"))
    assert '"tensorflow-tpu==${TF_TPU_VERSION}"' in runs
    assert "--no-deps" in runs and "/lib/libtpu.so" in runs
    assert "TPU_LIBRARY_PATH=/lib/libtpu.so" in " ".join(args_of("Dockerfile.tpu", "ENV"))
    assert "tensorflow[and-cuda]" in " ".join(args_of("Dockerfile", "RUN"))


# ---------------------------------------------------------------------------- build context


def dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def _matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches a path or any folder above it; ** spans folders."""
    regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
    parts = path.split("/")
    return any(re.match(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1))


def in_context(path: str) -> bool:
    """Whether .dockerignore lets a file into the build context (the last match wins)."""
    included = True
    for negated, pattern in dockerignore_patterns():
        if _matches(pattern, path):
            included = negated
    return included


def context_files() -> list[str]:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.split()
    return [f for f in files if (ROOT / f).is_file() and in_context(f)]


def test_dockerignore_keeps_tests_outputs_and_environments_out() -> None:
    for path in (
        "tests/test_jobs.py",
        "output/model/saved_model.pb",
        ".venv/bin/python",
        ".venv-oldest/lib/python3.10/site-packages/x.py",
        ".git/HEAD",
        "dist/trainer-0.1.0.tar.gz",
        "jobs/custom_cpu.yaml",
        "trainer/__pycache__/task.cpython-311.pyc",
        "README.md",
    ):
        assert not in_context(path), path
    for name in DOCKERFILES:
        for copy in args_of(name, "COPY"):
            for source in shlex.split(copy)[:-1]:
                assert in_context(source) or in_context(f"{source}/task.py"), (name, source)


def build_context(tmp_path: Path) -> Path:
    """The Dockerfile's /src: what its COPY lines take from the filtered build context."""
    src = tmp_path / "src"
    src.mkdir()
    files = context_files()
    for copy in args_of("Dockerfile", "COPY"):
        *sources, _dest = shlex.split(copy)
        for source in sources:
            for path in files:
                if path == source or path.startswith(source.rstrip("/") + "/"):
                    target = src / path  # COPY x ./x and COPY a b ./ keep the layout
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / path, target)
    return src


# ---------------------------------------------------------------------------- install and run


@pytest.fixture(scope="module")
def tensorflow_site() -> str:
    """site-packages of an environment holding only TensorFlow (made once, then reused)."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/test_oldest_tf.sh"), "--setup-only"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def installed(tensorflow_site: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A clean environment over that TensorFlow, with the package installed as the Dockerfile
    installs it; yields its python."""
    tmp = tmp_path_factory.mktemp("container")
    base_python = Path(tensorflow_site).parents[2] / "bin" / "python"
    venv = tmp / "venv"
    subprocess.run([str(base_python), "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "tensorflow-layer.pth").write_text(tensorflow_site + "\n")
    tf_version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('tensorflow'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The Dockerfile's TensorFlow layer holds tf-keras of TensorFlow's version beside it.
    tf_minor = ".".join(tf_version.split(".")[:2])
    pip = [str(python), "-m", "pip"]
    quiet = ["--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", *quiet, f"tf-keras~={tf_minor}.0"], check=True, timeout=600)
    src = build_context(tmp)
    [package_run] = [
        r for r in args_of("Dockerfile", "RUN") if re.search(r"pip install .* \.( |$)", r)
    ]
    install = shlex.split(package_run.split("&&")[0])
    assert install[:2] == ["pip", "install"] and install[-1] == "."
    # --no-cache-dir only keeps the image small; the cache spares downloads here.
    options = [a for a in install[2:-1] if a != "--no-cache-dir"]
    subprocess.run([*pip, "install", *quiet, *options, "."], cwd=src, check=True, timeout=600)
    yield python


def run_trainer(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [str(python), "-m", "trainer.task", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


# The first test to ask for `installed` may make the TensorFlow environment (a few minutes).
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_installed_package_answers_help(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed), "-c", "import trainer, tensorflow; print(trainer.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert "site-packages/trainer/" in where.stdout, "the installed package, not the source tree"
    result = run_trainer(installed, tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--data-dir", "--learning-rate", "--batch-size", "--hypertune-metric"):
        assert flag in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_installed_package_trains_a_smoke_run(installed: Path, tmp_path: Path) -> None:
    result = run_trainer(
        installed,
        tmp_path,
        *("--smoke", "--cpu", "--epochs", "1", "--steps-per-epoch", "4"),
        *("--job-dir", str(tmp_path / "job")),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "job" / "model" / "saved_model.pb").is_file()
    assert "reloaded" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tpu_requirements_leave_tensorflow_to_tensorflow_tpu(installed: Path) -> None:
    """Dockerfile.tpu's second pip line: the package's requirements but TensorFlow's."""
    result = subprocess.run(
        [
            str(installed),
            str(ROOT / "scripts/requirements_except.py"),
            *("trainer", "tensorflow", "tf-keras"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    names = {
        re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower() for line in result.stdout.split()
    }
    assert "google-cloud-storage" in names and "cloudml-hypertune" in names
    assert not names & {"tensorflow", "tf-keras", "pytest"}
    missing = subprocess.run(
        [str(installed), str(ROOT / "scripts/requirements_except.py"), "no-such-dist"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "is not installed" in missing.stderr
