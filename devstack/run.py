"""`make run`: the whole system on 127.0.0.1 until Ctrl-C.

Starts the Kafka-protocol broker on :9092, the MongoDB-protocol server on
:27017 (data kept in .local/mongo), creates the topics with 3 partitions and the
database's indexes (`manage.py ensure_indexes`), the local OpenID provider (:8089),
then the ledger (:5001), the storefront (:8000) and the consumer. The web services
accept tokens of the local issuer (.local/issuer, made on first start), the
provider's and `issue_token`'s alike; it prints ready ones and where to sign in. Ctrl-C (or
SIGTERM) stops everything it started, clients first.
"""

import os
import signal
import subprocess
import sys
import time

from devstack.stack import ROOT, Ports, Stack
from purchases_project.local_issuer import default_issuer

LOCAL = ROOT / ".local"


def main() -> int:
    logs = LOCAL / "logs"
    issuer = default_issuer()
    stack = Stack(
        logs,
        ports=Ports.defaults(),
        partitions=3,
        db_storage=str(LOCAL / "mongo"),
        extra_env={"LOG_FORMAT": "text"},
        issuer=issuer,
        signin=True,
    )
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("starting the broker, database, OpenID provider, ledger, storefront and consumer ...")
        stack.start_infra()
        # The indexes exist before the ledger and the consumer start, as in Kubernetes.
        subprocess.run([sys.executable, "manage.py", "ensure_indexes"], env=stack.env(), check=True)
        stack.start_web("ledger")
        stack.start_web("storefront")
        stack.start_consumer()
        print(
            f"""
The purchase system is running on 127.0.0.1:
  in a browser {stack.storefront_url}/        your purchases: sign in with any user name
  sign-in      {issuer.issuer}        the local OpenID provider (development only, no password)
  storefront   {stack.storefront_url}        POST /buy, GET /getAllUserBuys/<userid>, GET /health
  ledger       {stack.ledger_url}        GET /purchases/<userid> (open it in a browser), GET /health
  API docs     {stack.storefront_url}/api/docs/   {stack.ledger_url}/api/docs/
  metrics      http://127.0.0.1:{stack.ports.storefront_metrics}/metrics (storefront), \
:{stack.ports.ledger_metrics} (ledger), :{stack.ports.consumer_metrics} (consumer)
  broker       {stack.bootstrap}      database  mongodb://127.0.0.1:{stack.ports.mongo}

Tokens (24 h; more with `python manage.py issue_token USERID [--scope S] [--ttl 24h]`):
  export TOKEN={issuer.token("user123")}
  export SUPPORT_TOKEN={issuer.token("support1", scope="purchases:read-all")}

Try:
  curl -s -X POST {stack.storefront_url}/buy -H 'Content-Type: application/json' \\
       -H "Authorization: Bearer $TOKEN" -d '{{"username": "john", "userid": "user123", "price": 29.99}}'
  curl -s {stack.storefront_url}/getAllUserBuys/user123 -H "Authorization: Bearer $TOKEN"
  curl -s {stack.storefront_url}/getAllUserBuys/user123 -H "Authorization: Bearer $SUPPORT_TOKEN"

Logs: {logs}/*.log        Ctrl-C stops everything.""",
            flush=True,
        )
        while not stopping:
            for proc in stack.procs.values():
                if not proc.alive():
                    print(f"\n{proc.name} stopped unexpectedly (exit {proc.popen.returncode}); its log ends:")
                    print(proc.output()[-2000:])
                    return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nstopping ...", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        print("stopped.")


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
