"""`make bench`: our stack against the baseline, on this machine, all on 127.0.0.1.

Rounds interleave ours and the baseline's (the order alternates), each on a fresh
broker and database; the table shows medians over the rounds. Figures go to
bench-results/bench.json and bench-results/bench.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import baseline, procs
from bench.ours import OurRound, profile_storefront
from devstack.stack import ROOT

TARGETS = {"post32_rps_ratio": 3.0, "post32_p99_ratio": 0.5, "drain_steady_ratio": 5.0}
HPA_SHARE = 0.7


def cpus() -> int:
    return len(os.sched_getaffinity(0))


@dataclass
class Config:
    rounds: int = 3
    quick: bool = False
    duration: float = 10.0  # seconds per POST level (and the baseline's wrk runs)
    connections: list[int] = field(default_factory=lambda: [8, 16, 32, 128])
    backlog: int = 10_000
    get_sizes: list[int] = field(default_factory=lambda: [10, 1_000, 10_000])
    get_s: float = 3.0
    get_connections: int = 4
    e2e_s: float = 10.0
    warmup_s: float = 1.5
    drain_limit_s: float = 180.0
    baseline_limit_s: float = 600.0
    budget_min: float = 30.0
    baseline_drain_rounds: int | None = None  # None: every round
    cpus: int = field(default_factory=cpus)
    p99_target_ms: float | None = None
    profile: bool = False
    baseline: bool = True
    out: Path = ROOT / "bench-results"


def parse_args(argv=None) -> Config:
    ap = argparse.ArgumentParser(prog="make bench", description=__doc__)
    ap.add_argument(
        "--rounds", type=int, default=3, help="rounds of ours and the baseline's (median; default 3)"
    )
    ap.add_argument("--quick", action="store_true", help="short runs and a 2,000 backlog, for development")
    ap.add_argument("--duration", type=float, help="seconds per POST level (default 10, --quick 3)")
    ap.add_argument("--connections", help="POST levels, comma-separated (default 8,16,32,128)")
    ap.add_argument("--backlog", type=int, help="purchases in the drain test (default 10000, --quick 2000)")
    ap.add_argument("--no-baseline", action="store_true", help="measure our stack alone")
    ap.add_argument(
        "--baseline-drain-rounds",
        type=int,
        help="baseline rounds with the backlog drain (default: all; each takes minutes)",
    )
    ap.add_argument(
        "--p99-target-ms", type=float, help="p99 for the per-pod capacity (default: 0.5 x baseline's)"
    )
    ap.add_argument(
        "--profile", action="store_true", help="also profile the storefront with py-spy (extra run)"
    )
    ap.add_argument(
        "--budget-min", type=float, default=30.0, help="start no round that would end after this many minutes"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    cfg = Config(rounds=a.rounds, quick=a.quick, out=a.out, profile=a.profile, baseline=not a.no_baseline)
    cfg.budget_min = a.budget_min
    cfg.baseline_drain_rounds = a.baseline_drain_rounds
    cfg.p99_target_ms = a.p99_target_ms
    if a.quick:
        cfg.duration, cfg.backlog, cfg.get_s, cfg.e2e_s, cfg.warmup_s = 3, 2_000, 2, 5, 1
    if a.duration:
        cfg.duration = a.duration
    if a.backlog:
        cfg.backlog = a.backlog
    if a.connections:
        cfg.connections = sorted({int(c) for c in a.connections.split(",")})
    for required in (8, 32, 128):
        if required not in cfg.connections:
            cfg.connections = sorted({*cfg.connections, required})
    return cfg


# -- aggregation ---------------------------------------------------------------


def med(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def dig(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def per_process_medians(rows: list[dict]) -> dict:
    """Median CPU ms per purchase of each process over rounds, with the rounds' values."""
    names = sorted({k for r in rows for k in (r.get("cpu_ms_per_purchase") or {})})
    out = {}
    for k in names:
        values = [v for r in rows if (v := (r.get("cpu_ms_per_purchase") or {}).get(k)) is not None]
        out[k] = {"median": med(values), "per_round": values}
    return out


def summarize(cfg: Config, ours: list[dict], base: list[dict]) -> dict:
    post = {}
    for c in cfg.connections:
        rows = [dig(r, "post", str(c)) for r in ours]
        rows = [r for r in rows if r]
        post[str(c)] = {
            k: med([r[k] for r in rows]) for k in ("rps", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")
        } | {
            "non2xx_total": sum(r["non2xx"] for r in rows),
            "socket_errors_total": sum(r["socket_errors"] for r in rows),
            "rps_per_round": [r["rps"] for r in rows],
            "p99_per_round": [r["p99_ms"] for r in rows],
            "cpu_cores": {
                k: med([r.get("cpu_cores", {}).get(k) for r in rows])
                for k in sorted({k for r in rows for k in r.get("cpu_cores", {})})
            },
            "cpu_ms_per_purchase": per_process_medians(rows),
        }
    s: dict = {
        "ours": {
            "post": post,
            "drain": {
                k: med([dig(r, "drain", k) for r in ours])
                for k in ("rate_steady", "rate_total", "first_write_s")
            }
            | {"rate_steady_per_round": [dig(r, "drain", "rate_steady") for r in ours]},
            "e2e": {
                k: med([dig(r, "e2e", k) for r in ours])
                for k in ("achieved_rps", "p50_ms", "p99_ms", "samples", "poll_get_p50_ms")
            },
            "get_collection_docs": med([r.get("get_collection_docs") for r in ours]),
            "get": {
                str(n): {
                    k: med([dig(r, "get", str(n), k) for r in ours])
                    for k in ("rps", "p50_ms", "p95_ms", "p99_ms")
                }
                for n in cfg.get_sizes
            },
            "stored_check_ok": all(dig(r, "stored_check", "ok") for r in ours),
        }
    }
    if base:
        s["baseline"] = {
            "post32": {k: med([dig(r, "post", k) for r in base]) for k in ("rps", "p50_ms", "p99_ms")}
            | {
                "non2xx_total": sum(dig(r, "post", "non2xx") or 0 for r in base),
                "rps_per_round": [dig(r, "post", "rps") for r in base],
                "p99_per_round": [dig(r, "post", "p99_ms") for r in base],
            },
            "cpu_ms_per_purchase": per_process_medians(base),
            "drain": {
                k: med([dig(r, "drain_rate", k) for r in base])
                for k in ("rate_steady", "rate_total", "first_write_s")
            }
            | {"rate_steady_per_round": [dig(r, "drain_rate", "rate_steady") for r in base]},
            "get_random_users_32": {
                k: med([dig(r, "get", k) for r in base]) for k in ("rps", "p50_ms", "p99_ms")
            },
        }
    s["targets"] = targets(s)
    s["capacity"] = capacity(cfg, s)
    return s


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def ratio_target(ours, baseline, name: str, at_least: bool) -> dict:
    """Ours against the baseline as a ratio, judged against TARGETS[name]."""
    r, goal = ratio(ours, baseline), TARGETS[name]
    met = r is not None and (r >= goal if at_least else r <= goal)
    return {
        "ours": ours,
        "baseline": baseline,
        "ratio": r,
        "target": f"{'>=' if at_least else '<='} {goal}x",
        "pass": met,
    }


def targets(s: dict) -> dict:
    o32 = s["ours"]["post"]["32"]
    nonzero = sum(v["non2xx_total"] for v in s["ours"]["post"].values())
    t = {"post_non2xx": {"ours": nonzero, "target": 0, "pass": nonzero == 0}}
    b = s.get("baseline")
    if b:
        t["post32_rps"] = ratio_target(o32["rps"], b["post32"]["rps"], "post32_rps_ratio", at_least=True)
        t["post32_p99"] = ratio_target(
            o32["p99_ms"], b["post32"]["p99_ms"], "post32_p99_ratio", at_least=False
        )
        t["drain_steady"] = ratio_target(
            s["ours"]["drain"]["rate_steady"], b["drain"]["rate_steady"], "drain_steady_ratio", at_least=True
        )
    return t


def capacity(cfg: Config, s: dict) -> dict:
    """Throughput at the p99 target (0.5 x the baseline's p99 at 32 connections) with
    WEB_CONCURRENCY = CPUs: the best median level whose median p99 meets it."""
    b = s.get("baseline")
    if cfg.p99_target_ms:
        target, source = cfg.p99_target_ms, "--p99-target-ms"
    elif b and b["post32"]["p99_ms"]:
        target, source = (
            round(TARGETS["post32_p99_ratio"] * b["post32"]["p99_ms"], 2),
            "0.5 x baseline p99 @32",
        )
    else:
        return {"note": "no baseline and no --p99-target-ms: capacity not computed"}
    ok = [
        (v["rps"], int(c))
        for c, v in s["ours"]["post"].items()
        if v["p99_ms"] is not None and v["p99_ms"] <= target
    ]
    if not ok:
        best = min(
            (
                (v["p99_ms"], v["rps"], int(c))
                for c, v in s["ours"]["post"].items()
                if v["p99_ms"] is not None
            ),
            default=None,
        )
        note = "no measured level met the p99 target"
        if best:
            note += f"; the lowest p99 was {best[0]} ms at {best[2]} connections ({best[1]:.0f} req/s)"
        return {
            "p99_target_ms": target,
            "source": source,
            "rps": None,
            "web_concurrency": cfg.cpus,
            "note": note,
        }
    rps, conns = max(ok)
    return {
        "p99_target_ms": target,
        "source": source,
        "rps": rps,
        "at_connections": conns,
        "web_concurrency": cfg.cpus,
        "hpa_target_rps": round(HPA_SHARE * rps, 1),
    }


# -- output --------------------------------------------------------------------


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def verdict(t):
    return "PASS" if t.get("pass") else "FAIL"


CPU_PROCESSES = ("storefront", "broker", "database", "consumer")


def print_cpu_per_purchase(ours32: dict, b: dict | None) -> None:
    """CPU ms per purchase at 32 connections, each process beside the baseline's (from the
    load's start until the purchases are stored; the baseline's consumer runs inside its
    management API; its storing side per stored purchase)."""
    ours = ours32.get("cpu_ms_per_purchase") or {}
    base = (b or {}).get("cpu_ms_per_purchase") or {}
    if not ours:
        return
    print("  CPU ms per purchase at 32 connections (median; rounds)        baseline")
    for name in CPU_PROCESSES:
        o, bv = ours.get(name, {}), base.get(name, {})
        rounds = ", ".join(f"{x:.2f}" for x in o.get("per_round", []))
        ours_ms, base_ms = fmt(o.get("median"), ".3f"), fmt(bv.get("median"), ".3f")
        print(f"    {name:<11} {ours_ms:>7}  ({rounds:<24}) {base_ms:>8}")


def print_table(cfg: Config, s: dict, n_ours: int, n_base: int, base_note: str | None) -> None:
    o = s["ours"]
    b = s.get("baseline")
    print()
    print(
        f"== make bench: medians of {n_ours} round(s) (ours), {n_base} (baseline); "
        f"WEB_CONCURRENCY={cfg.cpus} =="
    )
    if base_note:
        print(f"   {base_note}")
    print("\nPOST /buy (wrk, 1,000 users, varied prices)")
    print(
        f"  {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'sock err':>8}  per-round req/s"
    )
    for c, v in o["post"].items():
        rounds = ", ".join(f"{x:.0f}" for x in v["rps_per_round"])
        print(
            f"  {c:>5} {fmt(v['rps'], '.0f'):>8} {fmt(v['p50_ms']):>8} {fmt(v['p95_ms']):>8} "
            f"{fmt(v['p99_ms']):>8} "
            f"{v['non2xx_total']:>8} {v['socket_errors_total']:>8}  {rounds}"
        )
    if b:
        v = b["post32"]
        rounds = ", ".join(f"{x:.0f}" for x in v["rps_per_round"] if x is not None)
        print(
            f"  {'base32':>5} {fmt(v['rps'], '.0f'):>8} {fmt(v['p50_ms']):>8} {'-':>8} {fmt(v['p99_ms']):>8} "
            f"{v['non2xx_total']:>8} {'':>8}  {rounds}  (baseline, its own wrk script)"
        )
    print_cpu_per_purchase(o["post"].get("32", {}), b)
    for c in ("32", "128"):
        cores = o["post"].get(c, {}).get("cpu_cores")
        if cores:
            shares = ", ".join(f"{k} {v:.2f}" for k, v in sorted(cores.items(), key=lambda kv: -(kv[1] or 0)))
            print(f"  CPU cores used at {c} connections ({cfg.cpus} CPUs): {shares}")
    print("\nTargets")
    print(f"  {'what':<34} {'ours':>10} {'baseline':>10} {'ratio':>7} {'target':>9}  verdict")
    names = {
        "post32_rps": "POST@32 throughput (req/s)",
        "post32_p99": "POST@32 p99 (ms)",
        "post_non2xx": "POST non-2xx, all levels/rounds",
        "drain_steady": "backlog drain, steady (purchases/s)",
    }
    for key in ("post32_rps", "post32_p99", "post_non2xx", "drain_steady"):
        t = s["targets"].get(key)
        if t is None:
            print(f"  {names[key]:<34} {'(no baseline)':>10}")
            continue
        print(
            f"  {names[key]:<34} {fmt(t['ours']):>10} {fmt(t.get('baseline')):>10} "
            f"{fmt(t.get('ratio'), '.2f'):>7} "
            f"{t['target']!s:>9}  {verdict(t)}"
        )
    print("\nInformation")
    d = o["drain"]
    bd = b["drain"] if b else {}
    print(
        f"  backlog of {cfg.backlog}: first write after {fmt(d['first_write_s'], '.2f')} s "
        f"(baseline {fmt(bd.get('first_write_s'), '.2f')} s); rate incl. start {fmt(d['rate_total'])}/s "
        f"(baseline {fmt(bd.get('rate_total'))}/s)"
    )
    e = o["e2e"]
    print(
        f"  201 -> visible in GET, at {fmt(e['achieved_rps'], '.0f')} req/s (half the best POST throughput): "
        f"p50 {fmt(e['p50_ms'], '.0f')} ms, p99 {fmt(e['p99_ms'], '.0f')} ms "
        f"({fmt(e['samples'], '.0f')} probes; their GETs took p50 {fmt(e['poll_get_p50_ms'], '.0f')} ms)"
    )
    print(
        "  GET /getAllUserBuys, first page, on a collection of "
        f"{fmt(o['get_collection_docs'], ',.0f')} purchases:"
    )
    for n, v in o["get"].items():
        print(
            f"    user with {int(n):>6,} purchases ({cfg.get_connections} conns): "
            f"p50 {fmt(v['p50_ms'])} ms, p99 {fmt(v['p99_ms'])} ms, {fmt(v['rps'], '.0f')} req/s"
        )
    if b:
        g = b["get_random_users_32"]
        print(
            f"  baseline GET (random users, 32 conns): p50 {fmt(g['p50_ms'])} ms, p99 {fmt(g['p99_ms'])} ms, "
            f"{fmt(g['rps'], '.0f')} req/s"
        )
    if not o["stored_check_ok"]:
        print("  WARNING: some purchases answered 2xx were not stored (see bench.json, stored_check)")
    cap = s["capacity"]
    print("\nStorefront per-pod capacity")
    if cap.get("rps"):
        print(
            f"  {cap['rps']:.0f} req/s with WEB_CONCURRENCY={cap['web_concurrency']} "
            f"at p99 <= {cap['p99_target_ms']} ms "
            f"({cap['source']}; best level {cap['at_connections']} connections)"
        )
        print(f"  HPA target (70 %): {cap['hpa_target_rps']:.0f} req/s per pod")
    else:
        print(
            f"  {cap.get('note')}"
            + (f" (p99 target {cap['p99_target_ms']} ms)" if cap.get("p99_target_ms") else "")
        )


def chart(cfg: Config, s: dict, path: Path, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    post = s["ours"]["post"]
    conns = [c for c in post if post[c]["rps"] is not None]
    x = [post[c]["rps"] for c in conns]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.plot(x, [post[c]["p50_ms"] for c in conns], "o-", color="tab:blue", label="ours p50")
    ax.plot(x, [post[c]["p99_ms"] for c in conns], "s-", color="tab:red", label="ours p99")
    for c, xi in zip(conns, x, strict=True):
        ax.annotate(f"{c}c", (xi, post[c]["p99_ms"]), textcoords="offset points", xytext=(4, 6), fontsize=8)
    b = s.get("baseline")
    if b and b["post32"]["rps"]:
        v = b["post32"]
        ax.plot(
            [v["rps"]], [v["p50_ms"]], "o", mfc="none", color="tab:blue", ms=10, label="baseline p50 (32c)"
        )
        ax.plot(
            [v["rps"]], [v["p99_ms"]], "s", mfc="none", color="tab:red", ms=10, label="baseline p99 (32c)"
        )
    cap = s.get("capacity", {})
    if cap.get("p99_target_ms"):
        ax.axhline(
            cap["p99_target_ms"], ls="--", color="grey", lw=1, label=f"p99 target {cap['p99_target_ms']} ms"
        )
    ax.set_yscale("log")
    ax.set_xlabel("throughput (requests/s)")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title(
        f"POST /buy, WEB_CONCURRENCY={cfg.cpus}, medians of {meta['rounds_ours']} round(s)\n"
        f"{meta['finished']}, load avg at start {meta['loadavg_start']}",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def git_describe() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# -- main ----------------------------------------------------------------------


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    cfg = parse_args(argv)
    # Ctrl-C and SIGTERM stop everything started (also when started with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    cfg.out.mkdir(parents=True, exist_ok=True)
    work = cfg.out / "work"  # each stack's logs (its database files are removed after use)
    shutil.rmtree(work, ignore_errors=True)
    where = baseline.find_dir() if cfg.baseline else None
    base_note = None
    if cfg.baseline and where is None:
        base_note = "baseline folder not found (../shared/baseline or $BASELINE_DIR): our figures alone"
    elif where is not None and not baseline.python().exists():
        base_note = f"no baseline virtualenv at {baseline.python()} (run bench/setup.sh): our figures alone"
        where = None
    elif not cfg.baseline:
        base_note = "--no-baseline: our figures alone"
    if base_note:
        print(base_note, flush=True)
    meta = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "host": platform.node(),
        "cpus": cfg.cpus,
        "python": platform.python_version(),
        "commit": git_describe(),
        "baseline_dir": str(where) if where else None,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "note": "runs are noisy (about ±20 %); compare ours and the baseline's from the same run only",
    }
    ours: list[dict] = []
    base: list[dict] = []
    errors: list[str] = []
    t0 = time.monotonic()
    try:
        for i in range(1, cfg.rounds + 1):
            spent = time.monotonic() - t0
            if i > 1 and spent + spent / (i - 1) > cfg.budget_min * 60:
                errors.append(
                    f"another round would end after the {cfg.budget_min:.0f} min budget: "
                    f"stopped after {i - 1} round(s) (--budget-min)"
                )
                print(errors[-1], flush=True)
                break
            order = ["ours", "baseline"] if i % 2 else ["baseline", "ours"]
            print(
                f"\n-- round {i}/{cfg.rounds} ({' then '.join(order)}), {time.monotonic() - t0:.0f}s in",
                flush=True,
            )
            for who in order:
                try:
                    if who == "ours":
                        ours.append(OurRound(cfg, i, work / f"ours-{i}").run())
                    elif where is not None:
                        base.append(baseline.run_round(cfg, where, i))
                except Exception as exc:  # noqa: BLE001 - one failed round must not lose the others
                    errors.append(f"round {i}, {who}: {type(exc).__name__}: {exc}")
                    print(f"  ERROR {errors[-1]}", flush=True)
        profile = None
        if cfg.profile:
            print(
                "\n-- profiling the storefront (py-spy, an extra run whose figures are not used)", flush=True
            )
            profile = profile_storefront(cfg, work / "profile", cfg.out)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping what was started ...", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        procs.stop_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not ours:
        print("no round of ours completed:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    meta.update(
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        loadavg_end=" ".join(f"{x:.2f}" for x in os.getloadavg()),
        elapsed_s=round(time.monotonic() - t0, 1),
        rounds_ours=len(ours),
        rounds_baseline=len(base),
        errors=errors,
        baseline_note=base_note,
    )
    s = summarize(cfg, ours, base)
    print_table(cfg, s, len(ours), len(base), base_note)
    # The per-request work alone (pyperf, processes of its own): the /buy body and the token
    # check on the POST path (its cost is in the storefront's CPU per purchase too), which must
    # stay under 0.1 ms per request.
    print()
    (cfg.out / "micro.json").unlink(missing_ok=True)  # pyperf writes a new file only
    micro = [sys.executable, "-m", "bench.micro", "--fast", "--quiet", "-o", str(cfg.out / "micro.json")]
    code, out_text, err_text = procs.run(micro, timeout=900)
    print(out_text, err_text, sep="", end="")
    if code != 0:
        errors.append("micro-benchmarks failed or token verification is above its 0.1 ms target (see above)")
    if profile and profile.get("summary"):
        split = profile["time_split"]
        print("\nStorefront profile (an extra run at 32 connections with py-spy attached)")
        print(
            f"  mean per POST: wrk {split['wrk_mean_ms']} ms, "
            f"in the Django view {split['django_view_mean_ms']} ms, "
            f"of which waiting for the broker's ack {split['publish_wait_mean_ms']} ms"
        )
        print("  where the Python CPU goes (py-spy --gil; self share, top 12):")
        for name, pct in profile["summary"]["self_pct"][:12]:
            print(f"  {pct:5.1f} %  {name}")
        print(f"  raw stacks (flamegraph.pl / speedscope): {profile['raw']}")
    out = {"meta": meta, "summary": s, "rounds": {"ours": ours, "baseline": base}, "profile": profile}
    (cfg.out / "bench.json").write_text(json.dumps(out, indent=2))
    chart(cfg, s, cfg.out / "bench.png", meta)
    print(
        f"\nfigures: {cfg.out / 'bench.json'}, chart: {cfg.out / 'bench.png'} "
        f"({meta['elapsed_s'] / 60:.1f} min; load average {meta['loadavg_start']} -> {meta['loadavg_end']})"
    )
    if errors:
        print("errors:\n  " + "\n  ".join(errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
