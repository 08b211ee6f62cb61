"""Every process the benchmark starts itself (wrk, py-spy, the baseline's script), so
that all of them are stopped by PID at the end, also on Ctrl-C or an error.

The stacks' own processes are stopped by `devstack.stack.Stack.stop()`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil

_running: list[subprocess.Popen] = []


def popen(cmd: list[str], **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, **kwargs)
    _running.append(proc)
    return proc


def run(cmd: list[str], timeout: float, **kwargs) -> tuple[int, str, str]:
    """Run to completion (bounded); returns (exit code, stdout, stderr)."""
    proc = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        stop(proc)
    return proc.returncode, out, err


def descendants(pid: int) -> list[int]:
    """PIDs below `pid` (children, grandchildren ...); [] once it has exited."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def stop(proc: subprocess.Popen, first_signal: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Signal the process, wait up to `grace`, then SIGKILL it and whatever it left running."""
    if proc.poll() is None:
        below = descendants(proc.pid)
        _kill(proc.pid, first_signal)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid, *below]:
                _kill(pid, signal.SIGKILL)
            proc.wait(10)
        # Children it should have stopped itself (the baseline script stops its own).
        deadline = time.monotonic() + 5
        for pid in below:
            while psutil.pid_exists(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if psutil.pid_exists(pid):
                _kill(pid, signal.SIGKILL)
    if proc in _running:
        _running.remove(proc)


def stop_all() -> None:
    for proc in reversed(list(_running)):
        # SIGINT: the baseline's script stops its own servers on KeyboardInterrupt.
        stop(proc, signal.SIGINT, grace=25.0)


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds of a process and (by default) its live descendants."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)] if children else [root]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
