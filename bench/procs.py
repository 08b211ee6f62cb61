"""Every process the benchmark starts itself (wrk, py-spy, the baseline's script), so
that all of them are stopped by PID at the end, also on Ctrl-C or an error.

The stacks' own processes are stopped by `devstack.stack.Stack.stop()`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

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
    """PIDs below `pid` (children, grandchildren ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo and len(found) < 10_000:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


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
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                _kill(pid, signal.SIGKILL)
    if proc in _running:
        _running.remove(proc)


def stop_all() -> None:
    for proc in reversed(list(_running)):
        # SIGINT: the baseline's script stops its own servers on KeyboardInterrupt.
        stop(proc, signal.SIGINT, grace=25.0)


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds of a process and (by default) its live descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in [pid, *descendants(pid)] if children else [pid]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick
