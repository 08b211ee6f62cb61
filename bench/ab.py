"""A/B of two checkouts' storefronts, in alternating rounds, on 127.0.0.1.

    .venv/bin/python -m bench.ab --b-root /tmp/other-checkout [--rounds 3] [--seconds 15]

Each round starts, for A (this checkout) and for B (another checkout of the project,
e.g. `git archive <commit> | tar -x -C /tmp/other-checkout`), in alternating order, a
fresh broker and a storefront (`WEB_CONCURRENCY=2`) from that checkout's own
`devstack/stack.py`; then POST /buy with wrk at 32 connections (after a warm-up),
the CPU seconds of the storefront (all its processes) and of the broker per request,
and 200 slow clients (half a request header each) while 10 health probes are timed.
`--b-proxy` puts Debian's nginx (buffering, as a sidecar would) in front of B's storefront;
its CPU counts as the storefront's.
Prints one JSON line per measurement and the medians with their spread.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import procs
from bench.load import POST_LUA, use_issuer, wrk
from devstack.slow_clients import close_all, open_slow_clients
from devstack.stack import free_port

ROOT = Path(__file__).resolve().parent.parent


def _stack_module(root: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"ab_stack_{name}", root / "devstack" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _probe(url: str, timeout: float = 2.0) -> float | None:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            return time.monotonic() - started if response.status == 200 else None
    except OSError:
        return None


def slow_clients(port: int, count: int = 200, probes: int = 10) -> dict:
    clients = open_slow_clients(port, count)
    try:
        times = [_probe(f"http://127.0.0.1:{port}/health") for _ in range(probes)]
    finally:
        close_all(clients)
    answered = [t for t in times if t is not None]
    return {
        "probes_answered": f"{len(answered)}/{probes}",
        "probe_worst_ms": round(max(answered) * 1000, 1) if answered else None,
    }


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    client_header_timeout 10s;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""


def start_proxy(stack, upstream: int) -> int:
    """nginx (Debian's) in front of the storefront, buffering requests and responses."""
    port = free_port()
    folder = stack.workdir / "nginx"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=folder, upstream=upstream, port=port))
    stack.spawn("proxy", ["nginx", "-p", str(folder), "-c", str(conf)], env=dict(os.environ))
    for _ in range(100):
        if _probe(f"http://127.0.0.1:{port}/health", 0.5):
            return port
        time.sleep(0.1)
    raise RuntimeError("the proxy did not start")


def one(name: str, root: Path, workdir: Path, seconds: float, extra_env: dict, proxy: bool = False) -> dict:
    module = _stack_module(root, name)
    stack = module.Stack(workdir / name, extra_env=extra_env)
    try:
        stack.start_broker()
        stack.create_topics()
        stack.start_web("storefront", WEB_CONCURRENCY=2)
        port = start_proxy(stack, stack.ports.storefront) if proxy else stack.ports.storefront
        use_issuer(getattr(stack, "issuer", None), stack.workdir)
        url = f"http://127.0.0.1:{port}"
        wrk(url, POST_LUA, 8, 3, env={"BENCH_USER_PREFIX": "w-"})
        pids = {"storefront": [stack.procs["storefront"].pid], "broker": [stack.procs["broker"].pid]}
        if proxy:
            pids["storefront"].append(stack.procs["proxy"].pid)
        before = {k: sum(map(procs.cpu_seconds, p)) for k, p in pids.items()}
        r = wrk(url, POST_LUA, 32, seconds)
        after = {k: sum(map(procs.cpu_seconds, p)) for k, p in pids.items()}
        ok = max(1, r["requests"] - r["non2xx"])
        result = {
            "server": name,
            "rps": round(r["rps"]),
            "p99_ms": round(r["p99_ms"], 1),
            "non2xx": r["non2xx"],
            **{f"{k}_cpu_ms_per_req": round((after[k] - before[k]) * 1000 / ok, 3) for k in pids},
        }
        result.update(slow_clients(port))
        return result
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--b-root", type=Path, required=True, help="the other checkout")
    parser.add_argument("--a-name", default="A")
    parser.add_argument("--b-name", default="B")
    parser.add_argument("--b-proxy", action="store_true", help="nginx in front of B's storefront")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for both sides")
    parser.add_argument("--b-env", action="append", default=[], help="NAME=VALUE for B only")
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.env)
    b_env = {**extra_env, **dict(item.split("=", 1) for item in args.b_env)}
    sides = [(args.a_name, ROOT), (args.b_name, args.b_root.resolve())]
    results: dict[str, list[dict]] = {args.a_name: [], args.b_name: []}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        try:
            for index in range(args.rounds):
                for name, root in sides if index % 2 == 0 else sides[::-1]:
                    proxy = args.b_proxy and name == args.b_name
                    env = b_env if name == args.b_name else extra_env
                    r = one(name, root, Path(tmp) / f"r{index}", args.seconds, env, proxy)
                    results[name].append(r)
                    print(json.dumps({"round": index, **r}), flush=True)
        finally:
            procs.stop_all()
    for name, rows in results.items():
        summary = {}
        for key in ("rps", "p99_ms", "storefront_cpu_ms_per_req", "broker_cpu_ms_per_req"):
            values = [row[key] for row in rows]
            summary[key] = f"{statistics.median(values)} ({min(values)}-{max(values)})"
        summary["probes"] = [row["probes_answered"] for row in rows]
        summary["probe_worst_ms"] = [row["probe_worst_ms"] for row in rows]
        print(json.dumps({"median": name, **summary}), flush=True)


if __name__ == "__main__":
    main()
