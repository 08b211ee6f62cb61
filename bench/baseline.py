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
    try:
        out, err = proc.communicate(timeout=cfg.baseline_limit_s)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the baseline did not finish within {cfg.baseline_limit_s}s") from None
    finally:
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
    print(
        f"  [baseline] POST c=32: {post['rps']:.0f} req/s, "
        f"p50 {post['p50_ms']:.1f} p99 {post['p99_ms']:.1f} ms, "
        f"non-2xx {post['non2xx']}; drain steady {drain.get('rate_steady')}/s, "
        f"first write {drain.get('first_write_s')}s",
        flush=True,
    )
    return result
