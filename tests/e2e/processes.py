"""`catalog-refresher run` (and `simulate`) as a real process, for the end-to-end tests.

``ServiceProcess`` starts the service on a config file in a process group of its
own (so a kill reaches its refresh workers too), and a thread appends every line
it logs (stderr) to ``log`` as it comes, for the tests to wait on and to show
when they fail. ``SimulatorProcess`` does the same for the simulated systems.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from catalog_refresher.domain.specs import SPECS

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(read: Callable[[], T], until: Callable[[T], bool], seconds: float = 10) -> float:
    """Call ``read`` until ``until(result)``; how long it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not until(result := read()):
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {result}"
        time.sleep(0.05)
    return time.monotonic() - started


class ServiceProcess:
    """``catalog-refresher run --config <config>``, serving on ``url``."""

    def __init__(self, config: Path, url: str, *, env: Mapping[str, str] | None = None) -> None:
        self._start(url, ["run", "--config", str(config)], env)

    def _start(self, url: str, arguments: Sequence[str], env: Mapping[str, str] | None) -> None:
        self.url = url
        self.log: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "catalog_refresher", *arguments],
            env={**os.environ, **(env or {})},
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    def output(self) -> str:
        return "".join(self.log)

    def count(self, text: str) -> int:
        """How many lines logged so far hold ``text``."""
        return sum(text in line for line in list(self.log))

    def wait_for(self, text: str, times: int = 1, seconds: float = 90) -> None:
        """Wait until ``times`` lines hold ``text``; fail with the log if they do not."""
        self._wait(lambda: self.count(text), times, f"log {text!r} {times} times", seconds)

    def wait_for_first_runs(self, seconds: float = 60) -> None:
        """Until the API serves and every source has completed or failed a run."""
        self.wait_for("Serving the API on", seconds=seconds)

        def finished() -> int:
            return len(
                {
                    line.split()[2]
                    for line in list(self.log)
                    if " Completed " in line or " Error refreshing " in line
                }
            )

        self._wait(finished, len(SPECS), "finish its first runs", seconds)

    def _wait(self, count: Callable[[], int], wanted: int, what: str, seconds: float) -> None:
        """Until ``count()`` reaches ``wanted`` (or the process ends); else fail with the log."""
        with contextlib.suppress(AssertionError):
            poll(count, lambda n: n >= wanted or not self.alive, seconds)
        if count() < wanted:
            pytest.fail(f"the service did not {what}:\n{self.output()}")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, seconds: float = 60) -> int:
        """SIGTERM, then the exit code; the log is read to its end."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                self.kill()  # never leave a service behind
                raise
        self._reader.join(timeout=10)  # the pipe ends with the process
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to the whole process group: the service and its refresh workers."""
        if self.alive:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.alive:
            try:
                self.stop()
            finally:
                self.kill()
        assert self.process.stderr is not None
        self.process.stderr.close()


class SimulatorProcess(ServiceProcess):
    """``catalog-refresher simulate --port <port> <options>``: the ten systems, on ``url``."""

    def __init__(self, port: int, *options: str) -> None:
        self._start(f"http://127.0.0.1:{port}", ["simulate", "--port", str(port), *options], None)

    def wait_until_serving(self, seconds: float = 30) -> None:
        self.wait_for("Simulating the ten external systems on", seconds=seconds)
