"""Training jobs as real processes: launch, watch their output, signal them, always end them."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WAIT_S = 240  # bound on any wait for a line or an exit; a hung job fails the test, not CI


class Job:
    """One `python -m trainer.task` (or other Python) process with its output collected."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        module: str | None = "trainer.task",
        name: str = "job",
    ) -> None:
        self.name = name
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        command = [sys.executable, *(["-m", module] if module else []), *argv]
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = WAIT_S) -> re.Match[str]:
        """Block until a line matches `pattern` (a regex); fail if the job ends or time runs out."""
        regex = re.compile(pattern)
        for line in self.lines:
            if match := regex.search(line):
                return match
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(
                    f"{self.name} ended without printing /{pattern}/:\n{self.tail()}"
                )
            if match := regex.search(line):
                return match
        raise AssertionError(f"{self.name}: no /{pattern}/ within {timeout}s:\n{self.tail()}")

    def finish(self, timeout: float = WAIT_S) -> int:
        """The exit status, once the job has ended by itself (killed if it does not)."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as err:
            self.kill()
            raise AssertionError(f"{self.name} still ran after {timeout}s:\n{self.tail()}") from err
        self._reader.join(timeout=10)
        return status

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def tail(self, lines: int = 40) -> str:
        return "".join(self.lines[-lines:])


class Jobs:
    """Context manager that kills every job still running when the block ends."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def start(self, *args, **kwargs) -> Job:
        job = Job(*args, **kwargs)
        self.jobs.append(job)
        return job

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, *exc: object) -> None:
        for job in self.jobs:
            job.kill()


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(roles: Sequence[str]) -> list[str]:
    """TF_CONFIG of each task of a loopback cluster, e.g. roles ("chief", "worker")."""
    ports = free_ports(len(roles))
    cluster: dict[str, list[str]] = {}
    tasks = []
    for role, port in zip(roles, ports, strict=True):
        cluster.setdefault(role, []).append(f"127.0.0.1:{port}")
        tasks.append({"type": role, "index": len(cluster[role]) - 1})
    return [json.dumps({"cluster": cluster, "task": task}) for task in tasks]
