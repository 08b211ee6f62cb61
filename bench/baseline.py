"""One round of the baseline (the original design's rebuild), run by its own script
`stack.py` in a virtualenv of its own. Nothing of it is copied into the project."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from bench import procs
from bench.load import BenchError
from devstack.stack import ROOT

VENV = ROOT / ".venv-baseline"


def find_dir() -> Path | None:
    """$BASELINE_DIR, else ../shared/baseline relative to the repository root."""
    where = Path(os.environ.get("BASELINE_DIR") or ROOT.parent / "shared" / "baseline")
    return where.resolve() if (where / "stack.py").is_file() else None


def python() -> Path:
    return Path(os.environ.get("BASELINE_PYTHON") or VENV / "bin" / "python")


def _free_block(n: int = 4, tries: int = 100) -> int:
    """A base port with n consecutive free ports on 127.0.0.1 (the script uses base .. base+3)."""
    for _ in range(tries):
        base = random.randrange(20000, 60000)
        ok = True
        for port in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise BenchError("no block of free ports found for the baseline")


# The baseline's processes by what they run: its consumer runs inside the management API.
ROLES = (
    ("tansu", "broker"),
    ("secantus", "database"),
    ("customer-web-server", "storefront"),
    ("customer-management-api", "consumer"),
)


def _cmdline(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return f"{text} {os.readlink(f'/proc/{pid}/cwd')}"
    except OSError:
        return ""


class CpuDuringPost(threading.Thread):
    """The CPU seconds of each of the baseline's processes from the start of its POST load
    (its wrk with post.lua) until its GET load starts: the script waits in between until
    the purchases are stored (at most 120 s), so this is the load and the storing."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.before: dict[str, float] | None = None
        self.after: dict[str, float] | None = None
        self._stop_event = threading.Event()

    def _snapshot(self, below: list[int]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for pid in below:
            line = _cmdline(pid)
            role = next((r for key, r in ROLES if key in line), None)
            if role is not None and "wrk" not in line.split(" ", 1)[0]:
                totals[role] = totals.get(role, 0.0) + procs.cpu_seconds(pid, children=False)
        return totals

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            below = procs.descendants(self.pid)
            wrk_scripts = " ".join(_cmdline(p) for p in below if _cmdline(p).startswith("wrk"))
            if self.before is None and "post.lua" in wrk_scripts:
                self.before = self._snapshot(below)
            elif self.before is not None and "get.lua" in wrk_scripts:
                self.after = self._snapshot(below)
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def per_purchase(self, accepted: int, stored: int) -> dict[str, float] | None:
        """ms per purchase: the web side per accepted purchase, the storing side per stored one."""
        if not (self.before and self.after):
            return None
        out = {}
        for role in self.after:
            n = stored if role in ("consumer", "database") else accepted
            out[role] = round((self.after[role] - self.before.get(role, 0.0)) * 1000 / max(1, n), 3)
        return out


def run_round(cfg, where: Path, index: int) -> dict:
    drain_rounds = cfg.rounds if cfg.baseline_drain_rounds is None else cfg.baseline_drain_rounds
    cmd = [
        str(python()),
        str(where / "stack.py"),
        "baseline",
        "--duration",
        str(max(1, round(cfg.duration))),
        "--concurrency",
        "32",
        "--drain",
        str(cfg.backlog if index <= drain_rounds else 0),
        "--base-port",
        str(_free_block()),
    ]
    print(f"  [baseline] {' '.join(cmd[1:])}", flush=True)
    # A session of its own: only we signal it (SIGINT, so its own finally stops its servers).
    proc = procs.popen(
        cmd, cwd=where, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    sampler = CpuDuringPost(proc.pid)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=cfg.baseline_limit_s)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the baseline did not finish within {cfg.baseline_limit_s}s") from None
    finally:
        sampler.stop()
        procs.stop(proc, signal.SIGINT, grace=25)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"the baseline's script failed (exit {proc.returncode}): {err[-1500:]}")
    result = json.loads(lines[-1])
    logs = Path(result.get("logs") or "")
    if logs.name.startswith("bench-") and logs.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(logs, ignore_errors=True)
    result["round"] = index
    post, drain = result["post"], result.get("drain_rate") or {}
    result["cpu_ms_per_purchase"] = sampler.per_purchase(result["accepted"], result["stored"])
    print(
        f"  [baseline] POST c=32: {post['rps']:.0f} req/s, "
        f"p50 {post['p50_ms']:.1f} p99 {post['p99_ms']:.1f} ms, "
        f"non-2xx {post['non2xx']}; drain steady {drain.get('rate_steady')}/s, "
        f"first write {drain.get('first_write_s')}s; CPU ms per purchase {result['cpu_ms_per_purchase']}",
        flush=True,
    )
    return result
