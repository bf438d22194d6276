"""`catalog-refresher run` (and `simulate`) as a real process, for the end-to-end tests.

``ServiceProcess`` starts the service on a config file in a process group of its
own (so a kill reaches its refresh workers too), and a thread appends every line
it logs (stderr) to ``log`` as it comes, for the tests to wait on and to show
when they fail. ``SimulatorProcess`` does the same for the simulated systems.
"""

from __future__ import annotations

import contextlib
import itertools
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


#: Ports handed out by ``free_port``: below the kernel's ephemeral range (32768 and up
#: on Linux), where no ``bind(0)`` and no outgoing connection takes one; offset by the pid
#: so that two test runs at once rarely start at the same place.
_PORTS = itertools.count(20_000 + os.getpid() % 8_000)
_PORTS_LOCK = threading.Lock()
_EPHEMERAL_FROM = 32_768


def free_port() -> int:
    """A port nobody listens on now, for a service a test starts.

    Not ``bind(0)`` and close: the fault matrix starts 15 cells at once, and a port freed
    so was handed again to another cell's server before the service bound it (its
    ``/api/sources`` was answered by someone else). Ports from a range of their own, each
    given once per test run, cannot meet that.
    """
    with _PORTS_LOCK:
        for port in _PORTS:
            assert port < _EPHEMERAL_FROM, "the test run used up its ports"
            with socket.socket() as sock, contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", port))
                return port
    raise AssertionError("unreachable")  # pragma: no cover - the count never ends


def poll(read: Callable[[], T], until: Callable[[T], bool], seconds: float = 10) -> float:
    """Call ``read`` until ``until(result)``; how long it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not until(result := read()):
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {result}"
        time.sleep(0.05)
    return time.monotonic() - started


def group_members(group: int) -> list[int]:
    """The live (not zombie) processes of process group ``group``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after it.
            state, _, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
            if int(pgrp) == group and state != "Z":
                members.append(int(stat.parent.name))
    return members


def refresh_workers(pid: int) -> list[int]:
    """The refresh worker processes of service ``pid`` (not multiprocessing's resource
    tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = []
    for child in children:
        with contextlib.suppress(FileNotFoundError):
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in command:
                workers.append(int(child))
    return workers


def running(pid: int) -> bool:
    """Process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


class ServiceProcess:
    """``catalog-refresher run --config <config>``, serving on ``url``.

    ``command`` runs another command line instead (``config`` is then not used), with
    ``environ`` as its whole environment when given (else ours and ``env``), in ``cwd``.
    """

    def __init__(
        self,
        config: Path | None,
        url: str,
        *,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.url = url
        self.log: list[str] = []
        if command is None:
            assert config is not None
            command = [sys.executable, "-m", "catalog_refresher", "run", "--config", str(config)]
        self.process = subprocess.Popen(
            list(command),
            env=dict(environ) if environ is not None else {**os.environ, **(env or {})},
            cwd=cwd,
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
        """SIGKILL to the whole process group: the service and its refresh workers, also
        ones a service that died left behind (they hold its stderr open)."""
        if self.alive or group_members(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.alive:
                self.stop()
        finally:
            self.kill()  # whatever is left of its group: no process outlives the test
        assert self.process.stderr is not None
        self.process.stderr.close()


class SimulatorProcess(ServiceProcess):
    """``catalog-refresher simulate --port <port> <options>``: the ten systems, on ``url``."""

    def __init__(self, port: int, *options: str) -> None:
        command = [sys.executable, "-m", "catalog_refresher", "simulate", "--port", str(port)]
        super().__init__(None, f"http://127.0.0.1:{port}", command=[*command, *options])

    def wait_until_serving(self, seconds: float = 30) -> None:
        self.wait_for("Simulating the ten external systems on", seconds=seconds)


def read_terminal(leader: int) -> str:
    """Everything written to the pseudo-terminal whose leader end is ``leader`` until the
    process on its other end exits (the caller closed its copy of that end); closes it."""
    output = b""
    try:
        while chunk := os.read(leader, 65536):
            output += chunk
    except OSError:  # Linux: EIO once the last writer of the terminal is gone
        pass
    finally:
        os.close(leader)
    return output.decode()
