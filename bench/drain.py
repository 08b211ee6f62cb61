"""`python -m bench.drain`: the consumer's drain rate alone, on a stack of its own.

Publishes a backlog straight into `purchases` (100 users), starts the consumer
and times the drain with bench.load.time_drain. Bounded: one backlog, a time
limit, every process stopped by PID. Faster than `make bench` when only the
consumer changed.
"""

import argparse
import json
import tempfile
import time
from decimal import Decimal

from bench import load, procs
from devstack.stack import Stack


def seed(stack: Stack, n: int, users: int = 100) -> None:
    from confluent_kafka import Producer

    from purchases_project import kafka_config
    from purchases_project.events import PurchaseEvent

    producer = Producer(kafka_config.producer(bootstrap_servers=stack.bootstrap, **{"linger.ms": 5}))
    for i in range(n):
        event = PurchaseEvent.new(username="d", userid=f"drain-{i % users}", price=Decimal(i % 5000) / 100)
        while True:
            try:
                producer.produce("purchases", key=event.userid.encode(), value=event.as_message())
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60) > 0:
        raise load.BenchError("the broker did not acknowledge the backlog")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--limit", type=float, default=180.0, help="give up after this many seconds")
    args = parser.parse_args()
    stack = Stack(tempfile.mkdtemp(prefix="drain-"), db_sync=False)
    try:
        stack.start_infra()
        seed(stack, args.backlog)
        with stack.mongo() as client:
            purchases = client[stack.database]["purchases"]
            database_cpu = procs.cpu_seconds(stack.procs["mongo"].pid)
            t_start = time.time()
            consumer = stack.start_consumer()
            result = load.time_drain(purchases.estimated_document_count, 0, args.backlog, t_start, args.limit)
        # CPU per event, start-up included: steadier than the rate when other work shares the cores.
        cpu = {
            "consumer_cpu_ms_per_event": procs.cpu_seconds(consumer.pid) * 1000 / args.backlog,
            "database_cpu_ms_per_event": (procs.cpu_seconds(stack.procs["mongo"].pid) - database_cpu)
            * 1000
            / args.backlog,
        }
        print(json.dumps({"backlog": args.backlog, **result, **{k: round(v, 3) for k, v in cpu.items()}}))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
