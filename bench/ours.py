"""One round against our stack: a fresh `devstack.stack.Stack` (fresh broker and database,
the database not synced on commit, like the baseline), measured, then stopped."""

from __future__ import annotations

import contextlib
import random
import resource
import shutil
import time
from decimal import Decimal
from pathlib import Path

from bench import load
from bench.load import GET_LUA, POST_LUA, BenchError, Client, wrk
from devstack.stack import Stack

# The stack's process names as the report shows them.
PROCESS_NAMES = {"mongo": "database"}


def _log(msg: str) -> None:
    print(f"  [ours] {msg}", flush=True)


class OurRound:
    """A round is three fresh stacks (fresh broker, fresh database each): GET latency then
    the backlog drain; the POST sweep; the end-to-end delay. The local database's costs
    grow with the collection (whole-collection counts, in-memory sorts), so a measurement
    taken after the sweep's 50,000+ purchases would mostly measure those."""

    def __init__(self, cfg, index: int, workdir: Path):
        self.cfg = cfg
        self.index = index
        self.workdir = workdir
        self.stack: Stack | None = None
        self.mongo = None
        self.coll = None
        self.timings: dict[str, float] = {}

    # -- helpers -------------------------------------------------------------

    @contextlib.contextmanager
    def fresh_stack(self, phase: str):
        """Broker, database (not synced on commit), ledger, storefront (WEB_CONCURRENCY = CPUs),
        consumer; a short warm-up; everything stopped by PID on the way out."""
        workdir = self.workdir / phase
        shutil.rmtree(workdir, ignore_errors=True)  # logs of an earlier run
        started = time.monotonic()
        try:
            for attempt in range(1, 4):
                # Ports are picked free, but the machine is shared: one may be taken before
                # its server binds it. Then stop what started and try other ports.
                stack = self.stack = Stack(workdir, db_sync=False, db_storage=str(workdir / "mongo"))
                try:
                    stack.start_infra()
                    stack.start_web("ledger")
                    stack.start_web("storefront", WEB_CONCURRENCY=self.cfg.cpus)
                    stack.start_consumer()
                    break
                except RuntimeError as exc:
                    stack.stop()
                    shutil.rmtree(workdir / "mongo", ignore_errors=True)
                    if "already in use" not in str(exc) or attempt == 3:
                        raise
                    _log(f"{exc}; trying other ports")
            load.use_issuer(stack.issuer, workdir)
            self.mongo = stack.mongo()
            self.coll = self.mongo[stack.database]["purchases"]
            # Warm-up: each worker's producer id, connections, first-request costs.
            warm = wrk(stack.storefront_url, POST_LUA, 8, self.cfg.warmup_s, env={"BENCH_USER_PREFIX": "w-"})
            self.settle(warm["requests"] - warm["non2xx"])
            self.timings[f"{phase}_start_s"] = round(time.monotonic() - started, 1)
            yield stack
        finally:
            stopping = time.monotonic()
            if self.mongo is not None:
                self.mongo.close()
                self.mongo = None
            if self.stack is not None:
                self.stack.stop()
                self.stack = None
            shutil.rmtree(workdir / "mongo", ignore_errors=True)
            self.timings[f"{phase}_stop_s"] = round(time.monotonic() - stopping, 1)

    def count(self) -> int:
        return self.coll.estimated_document_count()

    def settle(self, at_least: int = 0, timeout: float = 60) -> int:
        """Wait until the purchases count reaches `at_least` and stops moving (bounded)."""
        deadline = time.monotonic() + timeout
        last, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            c = self.count()
            if c != last:
                last, still_since = c, time.monotonic()
            elif c >= at_least and time.monotonic() - still_since >= 1.0:
                return c
            time.sleep(0.2)
        _log(f"still moving after {timeout:.0f}s (count {last}, wanted {at_least})")
        return last

    def cpu_snapshot(self) -> dict[str, float]:
        from bench import procs

        snap = {name: procs.cpu_seconds(p.pid) for name, p in self.stack.procs.items() if p.alive()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        snap["wrk"] = children.ru_utime + children.ru_stime
        return snap

    def user_count(self, client: Client, userid: str) -> int:
        status, body = client.request("GET", f"/getAllUserBuys/{userid}?limit=1")
        return body.get("count", 0) if status == 200 and isinstance(body, dict) else -1

    # -- the round -------------------------------------------------------------

    def run(self) -> dict:
        result: dict = {"round": self.index}
        started = time.monotonic()
        with self.fresh_stack("get-drain"):
            result["get"] = self.get_latency()
            # The drain runs on a collection of this size (the baseline's, after its load, is similar).
            result["get_collection_docs"] = self.count()
            result["drain"] = self.backlog()
        with self.fresh_stack("post"):
            result["post"], result["stored_check"] = self.post_sweep()
        best = max(r["rps"] for r in result["post"].values())
        with self.fresh_stack("e2e"):
            result["e2e"] = self.end_to_end(best / 2)
        result["timings"] = self.timings
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        return result

    def backlog(self) -> dict:
        """Stop the consumer, queue `backlog` purchases for 100 users, start it, time the drain."""
        cfg, stack = self.cfg, self.stack
        self.settle()
        code = stack.procs["consumer"].stop()
        if code != 0:
            raise BenchError(f"the consumer stopped with exit code {code}")
        n0 = self.count()
        posted = load.post_many(stack.storefront_url, cfg.backlog, 100, prefix=f"d{self.index}-")
        t_start = time.time()
        stack.start_consumer()
        cpu_before, wall = self.cpu_snapshot(), time.monotonic()
        drain = load.time_drain(self.count, n0, cfg.backlog, t_start, limit=cfg.drain_limit_s)
        wall, after = time.monotonic() - wall, self.cpu_snapshot()
        drain["cpu_cores"] = {
            k: round((after[k] - cpu_before[k]) / wall, 2) for k in after if k in cpu_before and k != "wrk"
        }
        drain.update(backlog=cfg.backlog, posted_in_s=posted["seconds"], refused=posted["refused"])
        _log(
            f"drain of {cfg.backlog}: steady {drain['rate_steady']}/s, "
            f"first write after {drain['first_write_s']}s"
        )
        if not drain["drained"]:
            raise BenchError(f"the backlog did not drain within {cfg.drain_limit_s}s")
        return drain

    def seed(self, users: dict[str, int]) -> None:
        """Publish purchases straight into the consumer's topic (the wire format of events.py)."""
        from confluent_kafka import Producer

        from purchases_project import kafka_config
        from purchases_project.events import PurchaseEvent

        producer = Producer(kafka_config.producer(bootstrap_servers=self.stack.bootstrap, **{"linger.ms": 5}))
        rnd = random.Random(self.index)
        for userid, n in users.items():
            for _ in range(n):
                event = PurchaseEvent.new(
                    username=userid, userid=userid, price=Decimal(rnd.randrange(1, 100_000)) / 100
                )
                for _attempt in range(100):
                    try:
                        producer.produce("purchases", key=userid.encode(), value=event.as_message())
                        break
                    except BufferError:
                        producer.poll(0.1)
                else:
                    raise BenchError("the seeding producer's queue stayed full")
                producer.poll(0)
        if producer.flush(60) > 0:
            raise BenchError("the broker did not acknowledge the seeded purchases")

    def get_latency(self) -> dict:
        cfg = self.cfg
        users = {f"g{self.index}-{n}": n for n in cfg.get_sizes}
        self.seed(users)
        client = Client(self.stack.storefront_url)
        try:
            for userid, n in users.items():
                seen = load.wait_for(lambda u=userid, n=n: self.user_count(client, u) >= n, 180, 0.5)
                if not seen:
                    raise BenchError(f"{userid}: {n} seeded purchases not visible after 180s")
        finally:
            client.close()
        self.settle()
        out = {}
        for userid, n in users.items():
            r = wrk(
                f"{self.stack.storefront_url}/getAllUserBuys/{userid}",
                GET_LUA,
                cfg.get_connections,
                cfg.get_s,
            )
            out[str(n)] = r
            _log(
                f"GET, {n} purchases: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                f"{r['rps']:.0f} req/s"
            )
        return out

    def post_sweep(self) -> tuple[dict, dict]:
        cfg = self.cfg
        n0 = self.settle()
        accepted = 0
        out = {}
        for c in cfg.connections:
            cpu_before = self.cpu_snapshot()
            wall = time.monotonic()
            r = wrk(
                self.stack.storefront_url,
                POST_LUA,
                c,
                cfg.duration,
                env={"BENCH_USER_PREFIX": f"r{self.index}-"},
            )
            wall = time.monotonic() - wall
            after = self.cpu_snapshot()
            # CPU cores each process used during the run (wrk's own is in its result's absence).
            r["cpu_cores"] = {
                k: round((after[k] - cpu_before[k]) / wall, 2) for k in after if k in cpu_before
            }
            out[str(c)] = r
            level_ok = r["requests"] - r["non2xx"]
            accepted += level_ok
            _log(
                f"POST c={c}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} p95 {r['p95_ms']:.1f} "
                f"p99 {r['p99_ms']:.1f} ms, non-2xx {r['non2xx']}, socket errors {r['socket_errors']}"
            )
            # Let the consumer catch up, so one level's backlog does not load the next.
            self.settle(n0 + accepted, timeout=90)
            # Every process's CPU from the load's start until its purchases are stored, per purchase.
            settled = self.cpu_snapshot()
            r["cpu_ms_per_purchase"] = {
                PROCESS_NAMES.get(k, k): round((settled[k] - cpu_before[k]) * 1000 / max(1, level_ok), 3)
                for k in settled
                if k in cpu_before and k != "wrk"
            }
            _log(f"POST c={c}: CPU ms per purchase {r['cpu_ms_per_purchase']}")
        stored = self.count() - n0
        # wrk does not count answers still in flight when it stops, so stored may exceed accepted a little.
        check = {"accepted_2xx": accepted, "stored": stored, "ok": stored >= accepted}
        if not check["ok"]:
            _log(f"WARNING: {accepted} purchases answered 2xx but only {stored} stored")
        return out, check

    def end_to_end(self, rate: float) -> dict:
        cfg = self.cfg
        self.settle()
        r = load.end_to_end(self.stack.storefront_url, rate, cfg.e2e_s, prefix=f"e{self.index}-")
        _log(
            f"201 → visible at {r['achieved_rps']:.0f} req/s: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms "
            f"({r['samples']} probes)"
        )
        return r


def profile_storefront(cfg, workdir: Path, out_dir: Path) -> dict:
    """py-spy (GIL holders only: where the storefront's Python CPU goes) on the storefront's
    master and workers while wrk POSTs at 32 connections; plus the storefront's own
    metrics: mean time in Django against mean time waiting for the broker's ack."""
    import signal
    import subprocess
    import sys
    import urllib.request

    from bench import procs

    raw = out_dir / "profile-storefront.txt"
    pyspy = Path(sys.executable).parent / "py-spy"
    r = OurRound(cfg, 0, workdir)

    def metrics(stack) -> dict[str, float]:
        url = f"http://127.0.0.1:{stack.ports.storefront_metrics}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        wanted = ("purchase_publish_seconds_", "django_http_requests_latency_seconds_by_view_method_")
        out = {}
        for line in text.splitlines():
            if line.startswith(wanted) and ("_sum" in line or "_count" in line):
                if "purchase_publish" in line or 'view="purchase-create"' in line:
                    name, value = line.rsplit(" ", 1)
                    out[name.split("{")[0]] = float(value)
        return out

    with r.fresh_stack("profile") as stack:
        sf = stack.procs["storefront"]
        seconds = max(5, round(cfg.duration))
        cmd = [str(pyspy), "record", "--pid", str(sf.pid), "--subprocesses", "--rate", "100", "--gil"]
        cmd += ["--format", "raw", "--duration", str(seconds + 1), "--output", str(raw), "--nonblocking"]
        before = metrics(stack)
        with open(workdir / "py-spy.log", "w") as spy_log:
            spy = procs.popen(cmd, stdout=spy_log, stderr=subprocess.STDOUT)
        try:
            time.sleep(1.0)
            result = wrk(stack.storefront_url, POST_LUA, 32, seconds)
            spy.wait(seconds + 30)
        finally:
            procs.stop(spy, signal.SIGINT, grace=10)
        after = metrics(stack)
    delta = {k: after[k] - before.get(k, 0) for k in after}

    def mean_ms(prefix):
        n = delta.get(prefix + "_count") or 0
        return round(1000 * delta.get(prefix + "_sum", 0) / n, 2) if n else None

    split = {
        "django_view_mean_ms": mean_ms("django_http_requests_latency_seconds_by_view_method"),
        "publish_wait_mean_ms": mean_ms("purchase_publish_seconds"),
        "wrk_mean_ms": result["mean_ms"],
    }
    _log(f"profiled run (py-spy attached): {result['rps']:.0f} req/s, p99 {result['p99_ms']:.1f} ms; {split}")
    summary = summarize_profile(raw) if raw.exists() else None
    return {"wrk": result, "raw": str(raw), "time_split": split, "summary": summary}


def summarize_profile(raw: Path, top: int = 25) -> dict:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        total += n
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        frames = [
            f.split(" (", 1)[0] + " (" + f.split(" (", 1)[1].rsplit(":", 1)[0] + ")" if " (" in f else f
            for f in frames
        ]
        if frames:
            self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        for f in set(frames):
            incl_n[f] = incl_n.get(f, 0) + n

    def share(d):
        return [(k, round(100 * v / total, 1)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": total, "self_pct": share(self_n), "inclusive_pct": share(incl_n)}
