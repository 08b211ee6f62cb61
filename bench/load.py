"""Load generators and measurements: wrk with the Lua report hook, plain Python HTTP
clients (bulk and paced), and the backlog-drain timer.

Every loop here is bounded in count and in time.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import threading
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

from bench import procs

HERE = Path(__file__).resolve().parent
POST_LUA = HERE / "post.lua"
GET_LUA = HERE / "get.lua"


class BenchError(RuntimeError):
    pass


# -- bearer tokens -------------------------------------------------------------
# The storefront wants a token of its issuer on every customer request. Each user's
# token is minted once (by the stack's local issuer, as the tests mint theirs) and
# reused for the whole load; reads use one token with the support staff's scope.

READ_ALL_SCOPE = "purchases:read-all"
WRK_USERS = 1000  # post.lua's users: <prefix>1 .. <prefix>1000


class Tokens:
    def __init__(self, issuer, workdir: Path):
        self.issuer = issuer
        self.workdir = workdir
        self._by_user: dict[str, str] = {}
        self._lock = threading.Lock()
        self.read_all = issuer.token("bench-support", scope=READ_ALL_SCOPE)

    def for_user(self, userid: str) -> str:
        with self._lock:
            if userid not in self._by_user:
                self._by_user[userid] = self.issuer.token(userid)
            return self._by_user[userid]

    def wrk_file(self, prefix: str) -> Path:
        """post.lua's tokens, one line per user in its order."""
        path = self.workdir / f"tokens-{prefix or 'u'}.txt"
        if not path.exists():
            lines = [self.for_user(f"{prefix}{u}") for u in range(1, WRK_USERS + 1)]
            path.write_text("\n".join(lines) + "\n")
        return path


_tokens: Tokens | None = None


def use_issuer(issuer, workdir: Path) -> None:
    """The issuer whose tokens the loads send from now on (None: send none)."""
    global _tokens
    _tokens = Tokens(issuer, Path(workdir)) if issuer is not None else None


def _auth_env(script: Path, env: dict) -> dict:
    if _tokens is None:
        return {}
    if script == POST_LUA:
        return {"BENCH_TOKENS": str(_tokens.wrk_file(env.get("BENCH_USER_PREFIX", "u")))}
    return {"BENCH_TOKEN": _tokens.read_all}


def _auth_header(method: str, body: dict | None) -> dict:
    if _tokens is None:
        return {}
    if method == "POST" and body and isinstance(body.get("userid"), str):
        return {"Authorization": f"Bearer {_tokens.for_user(body['userid'])}"}
    return {"Authorization": f"Bearer {_tokens.read_all}"}


# -- wrk -------------------------------------------------------------------


def wrk(url: str, script: Path, connections: int, seconds: float, env: dict | None = None) -> dict:
    """One wrk run; returns the figures printed by report.lua's done() hook."""
    threads = max(1, min(2, connections))
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    env = env or {}
    code, out, err = procs.run(cmd, timeout=seconds + 60, env={**os.environ, **env, **_auth_env(script, env)})
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line[len("BENCH_RESULT ") :])
            result["connections"] = connections
            return result
    raise BenchError(f"wrk gave no result (exit {code}): {out[-500:]} {err[-500:]}")


# -- a small keep-alive HTTP client ------------------------------------------


class Client:
    """One keep-alive connection; reconnects once when the server closed it."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        headers |= _auth_header(method, body)
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                # An idle keep-alive connection closed by the server: nothing was processed.
                self.close()
                if attempt == 2:
                    raise
                continue
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            return response.status, parsed
        raise BenchError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def post_many(base_url: str, n: int, users: int, prefix: str, threads: int = 8, limit_s: float = 300) -> dict:
    """POST exactly `n` purchases answered 201 (spread over `users` users); bounded in tries and time."""
    lock = threading.Lock()
    state = {"accepted": 0, "tries": 0, "other": 0, "inflight": 0}
    deadline = time.monotonic() + limit_s
    errors: list[BaseException] = []

    def worker():
        client = Client(base_url)
        rnd = random.Random()
        try:
            while time.monotonic() < deadline:
                with lock:
                    if state["accepted"] + state["inflight"] >= n or state["tries"] >= 3 * n:
                        return
                    state["tries"] += 1
                    state["inflight"] += 1
                u = rnd.randrange(users)
                try:
                    status, _ = client.request(
                        "POST",
                        "/buy",
                        {
                            "username": f"{prefix}{u}",
                            "userid": f"{prefix}{u}",
                            "price": rnd.randrange(1, 100_000) / 100,
                        },
                    )
                finally:
                    with lock:
                        state["inflight"] -= 1
                with lock:
                    if status == 201:
                        state["accepted"] += 1
                    else:
                        state["other"] += 1
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
        finally:
            client.close()

    started = time.monotonic()
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(max(0.1, deadline - time.monotonic() + 5))
    if state["accepted"] < n:
        raise BenchError(
            f"only {state['accepted']} of {n} purchases accepted ({state['other']} refused; {errors[:1]})"
        )
    return {
        "accepted": state["accepted"],
        "refused": state["other"],
        "seconds": round(time.monotonic() - started, 2),
    }


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


# -- end-to-end delay ----------------------------------------------------------


def end_to_end(
    base_url: str,
    rate: float,
    seconds: float,
    prefix: str,
    load_threads: int = 4,
    probe_threads: int = 2,
    probe_interval: float = 0.1,
    poll_interval: float = 0.05,
) -> dict:
    """Paced POST load at `rate` requests/s in total; probes measure 201 → visible in GET.

    Each probe owns one user: one thread posts a purchase every `probe_interval`, another
    reads `GET /getAllUserBuys/<user>?limit=1` every `poll_interval` (or back to back when
    a GET takes longer) while any of its purchases is not yet visible. One user's purchases
    share a partition and are stored in order, so when `count` reaches k the k-th purchase
    is visible; its delay is the moment that GET answered minus the moment its 201 arrived
    (resolution: the poll interval plus one GET).
    """
    probe_rate = probe_threads / probe_interval
    load_rate = max(1.0, rate - probe_rate)
    per_thread = load_rate / load_threads
    start = time.monotonic() + 0.2
    end = start + seconds
    lock = threading.Lock()
    sent = {"ok": 0, "bad": 0, "late": 0}
    delays: list[float] = []
    gets: list[float] = []
    probe_stats = {"posted": 0, "unseen": 0, "bad": 0}

    def load_worker(index: int):
        client = Client(base_url)
        rnd = random.Random(index)
        k = 0
        try:
            while True:
                due = start + k / per_thread
                now = time.monotonic()
                if due >= end or now >= end:
                    return
                if due > now:
                    time.sleep(due - now)
                elif now - due > 1.0:
                    # More than a second behind: skip ahead rather than burst.
                    skipped = int((now - due) * per_thread)
                    k += skipped
                    with lock:
                        sent["late"] += skipped
                    continue
                k += 1
                u = rnd.randrange(1000)
                status, _ = client.request(
                    "POST",
                    "/buy",
                    {"username": f"e{u}", "userid": f"{prefix}{u}", "price": rnd.randrange(1, 100_000) / 100},
                )
                with lock:
                    sent["ok" if status == 201 else "bad"] += 1
        finally:
            client.close()

    def probe_poster(index: int, pending: deque, done: threading.Event):
        client = Client(base_url)
        user = f"{prefix}probe{index}"
        posted = 0
        k = 0
        try:
            while k < seconds / probe_interval + 1:
                due = start + index * probe_interval / probe_threads + k * probe_interval
                if due >= end:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                k += 1
                status, _ = client.request(
                    "POST", "/buy", {"username": "probe", "userid": user, "price": "1.25"}
                )
                if status == 201:
                    posted += 1
                    with lock:
                        pending.append((posted, time.monotonic()))
                else:
                    with lock:
                        probe_stats["bad"] += 1
        finally:
            client.close()
            done.set()
            with lock:
                probe_stats["posted"] += posted

    def probe_poller(index: int, pending: deque, done: threading.Event):
        client = Client(base_url)
        user = f"{prefix}probe{index}"
        try:
            while time.monotonic() < end + 15:
                with lock:
                    waiting = bool(pending)
                if not waiting:
                    if done.is_set():
                        return
                    time.sleep(0.01)
                    continue
                asked = time.monotonic()
                status, body = client.request("GET", f"/getAllUserBuys/{user}?limit=1")
                seen_at = time.monotonic()
                count = body.get("count", 0) if status == 200 and isinstance(body, dict) else 0
                with lock:
                    gets.append(seen_at - asked)
                    while pending and pending[0][0] <= count:
                        _, answered = pending.popleft()
                        delays.append(seen_at - answered)
                time.sleep(max(0.0, asked + poll_interval - time.monotonic()))
        finally:
            client.close()
            with lock:
                probe_stats["unseen"] += len(pending)

    pool = [threading.Thread(target=load_worker, args=(i,), daemon=True) for i in range(load_threads)]
    for i in range(probe_threads):
        pending: deque[tuple[int, float]] = deque()
        done = threading.Event()
        pool.append(threading.Thread(target=probe_poster, args=(i, pending, done), daemon=True))
        pool.append(threading.Thread(target=probe_poller, args=(i, pending, done), daemon=True))
    for t in pool:
        t.start()
    for t in pool:
        t.join(max(0.1, end + 20 - time.monotonic()))
    achieved = (sent["ok"] + sent["bad"] + probe_stats["posted"]) / seconds
    return {
        "target_rps": round(rate, 1),
        "achieved_rps": round(achieved, 1),
        "non2xx": sent["bad"] + probe_stats["bad"],
        "skipped_late": sent["late"],
        "samples": len(delays),
        "unseen": probe_stats["unseen"],
        "p50_ms": _ms(percentile(delays, 50)),
        "p99_ms": _ms(percentile(delays, 99)),
        "max_ms": _ms(max(delays) if delays else None),
        "mean_ms": _ms(statistics.fmean(delays) if delays else None),
        "poll_get_p50_ms": _ms(percentile(gets, 50)),
        "poll_get_p99_ms": _ms(percentile(gets, 99)),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


# -- backlog drain -----------------------------------------------------------------


def time_drain(count, n0: int, n: int, t_start: float, limit: float = 300) -> dict:
    """Watch a backlog of n drain into the database, as the baseline's script does:
    the rate over the whole wait (process start and group join included), the steady
    rate from the first stored purchase to the last, and the time to the first write."""
    t_first = c_first = None
    c = n0
    polls = 0
    while time.time() - t_start < limit and c < n0 + n and polls < limit * 100:
        polls += 1
        c = count()
        if t_first is None and c > n0:
            t_first, c_first = time.time(), c
        time.sleep(0.05)
    t_end = time.time()
    done = c >= n0 + n
    steady = (n0 + n - c_first) / (t_end - t_first) if t_first and t_end > t_first and done else None
    return {
        "rate_total": round(n / (t_end - t_start), 1) if done else None,
        "rate_steady": round(steady, 1) if steady else None,
        "first_write_s": round(t_first - t_start, 2) if t_first else None,
        "drained": done,
    }


def wait_for(check, timeout: float, interval: float = 0.25):
    """Poll `check()` until it returns something true; returns it, or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    return None
