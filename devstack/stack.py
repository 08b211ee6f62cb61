"""A whole local stack on 127.0.0.1: the Kafka-protocol broker (Tansu), the MongoDB-protocol
server (SecantusDB), storefront, ledger, consumer, and (`signin`) the OpenID provider.

Used by `make run`, the tests and the benchmark. Every process runs in a session of its own and is
stopped by its PID (SIGTERM, then SIGKILL after a grace period). Development only: not in the image.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devstack.oidc_provider import OidcProvider
from devstack.processes import Ports, Proc, free_port, http_ok, port_open, tansu_binary, wait_until
from devstack.tls import Security
from purchases_project.local_issuer import LocalIssuer

__all__ = ["ROOT", "Ports", "Proc", "Stack", "free_port", "http_ok", "port_open", "wait_until"]

ROOT = Path(__file__).resolve().parent.parent
# The Kafka clients made here (topics, checks) take their configuration from the settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "purchases_project.settings")
PYTHON = sys.executable
BIN = Path(PYTHON).parent


@dataclass
class Stack:
    workdir: Path
    ports: Ports = field(default_factory=Ports)
    partitions: int = 3
    db_sync: bool = True
    db_storage: str | None = None  # a folder, or ":memory:"; default: workdir/mongo
    mongo_user: str | None = None  # with a password, runs the server with --auth
    mongo_password: str | None = None
    database: str = "purchase_db"
    extra_env: dict = field(default_factory=dict)
    issuer: LocalIssuer | None = None  # whose tokens the services accept; default: workdir/issuer
    security: Security | None = None  # TLS to both servers and a database user per client (devstack/tls.py)
    signin: bool = False  # run the local OpenID provider at the issuer's URL (http://127.0.0.1:PORT)
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.secret_key = secrets.token_urlsafe(32)
        self.idempotency_secret = secrets.token_urlsafe(32)
        self.issuer = (self.issuer or LocalIssuer(self.workdir / "issuer")).ensure()
        if self.security and not self.mongo_user:
            raise ValueError(
                "a stack with security needs mongo_user and mongo_password (the database's admin)"
            )
        self._users_created = False
        self.oidc = OidcProvider(self.issuer, self.ports) if self.signin else None

    # -- addresses ----------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.broker}"

    @property
    def mongo_uri(self) -> str:
        auth = ""
        if self.mongo_user:
            auth = f"{self.mongo_user}:{self.mongo_password}@"
        options = "directConnection=true" + ("&authSource=admin" if self.mongo_user else "")
        tls = f"&{self.security.mongo_options()}" if self.security else ""
        return f"mongodb://{auth}127.0.0.1:{self.ports.mongo}/?{options}{tls}"

    @property
    def storefront_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.storefront}"

    @property
    def ledger_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.ledger}"

    def env(self, **overrides) -> dict[str, str]:
        """The environment every project process of this stack runs with."""
        assert self.issuer is not None  # __post_init__ sets it
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MONGODB_", "AUTH_"))}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "purchases_project.settings",
                "DJANGO_SECRET_KEY": self.secret_key,
                "IDEMPOTENCY_SECRET": self.idempotency_secret,
                "DJANGO_DEBUG": "false",
                "BIND_ADDRESS": "127.0.0.1",
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "KAFKA_TOPIC_PARTITIONS": str(self.partitions),
                "KAFKA_SESSION_TIMEOUT_MS": "2000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
                "MONGODB_URI": self.mongo_uri,
                "MONGODB_DATABASE": self.database,
                "LEDGER_API_URL": self.ledger_url,
                "PYTHONUNBUFFERED": "1",
                **self.issuer.env(),
            }
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(self.security.env(self, overrides.get("SERVICE_ROLE", "")) if self.security else {})
        env.update(self.extra_env)
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    # -- processes ----------------------------------------------------------

    def spawn(self, name: str, cmd: list[str], env: dict | None = None, stop_grace: float = 10.0) -> Proc:
        old = self.procs.get(name)
        if old is not None and old.alive():
            raise RuntimeError(f"{name} is already running (pid {old.pid})")
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env or self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log, stop_grace)
        self.procs[name] = proc
        return proc

    def _check_port_free(self, port: int, what: str) -> None:
        if port_open(port):
            raise RuntimeError(f"port {port} for {what} is already in use on 127.0.0.1")

    def start_broker(self) -> Proc:
        # With TLS the broker listens behind the terminator, which takes the stack's broker port.
        listen = self.security.broker_port if self.security else self.ports.broker
        self._check_port_free(listen, "the broker")
        proc = self.spawn(
            "broker",
            [
                *(str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{listen}"),
                *("--advertised-listener-url", f"tcp://127.0.0.1:{self.ports.broker}"),
                *("--storage-engine", "memory://tansu/"),
            ],
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            stop_grace=7.0,
        )
        self._wait_port(proc, listen, 15)
        if self.security:
            self.security.start_terminator(self)
        return proc

    def start_mongo(self) -> Proc:
        self._check_port_free(self.ports.mongo, "the database")
        storage = self.db_storage or str(self.workdir / "mongo")
        cmd = [PYTHON, "-m", "secantus", "--host", "127.0.0.1", "--port", str(self.ports.mongo)]
        cmd += ["--storage-path", storage, "--log-level", "WARNING"]
        if self.db_sync:
            cmd.append("--sync-on-commit")
        cmd += self.security.mongo_args() if self.security else []
        if self.mongo_user and not self._users_created:
            # The server's users are made with auth off, then it restarts with --auth.
            if storage == ":memory:":
                raise ValueError("a database with users needs a storage folder")
            first = self.spawn("mongo", cmd, env=dict(os.environ), stop_grace=10.0)
            self._wait_port(first, self.ports.mongo, 30)
            self._create_mongo_user()
            first.stop()
            self._users_created = True
        if self.mongo_user:
            cmd.append("--auth")
        proc = self.spawn("mongo", cmd, env=dict(os.environ), stop_grace=10.0)
        self._wait_port(proc, self.ports.mongo, 30)
        wait_until(self._mongo_ping, 30, "database ping")
        return proc

    def _mongo_client(self, uri: str | None = None):
        import pymongo

        return pymongo.MongoClient(
            uri or self.mongo_uri, serverSelectionTimeoutMS=2000, uuidRepresentation="standard"
        )

    def _mongo_ping(self) -> bool:
        try:
            with self._mongo_client() as client:
                client.admin.command("ping")
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def _create_mongo_user(self) -> None:
        tls = f"&{self.security.mongo_options()}" if self.security else ""
        plain = f"mongodb://127.0.0.1:{self.ports.mongo}/?directConnection=true{tls}"
        with self._mongo_client(plain) as client:
            wait_until(lambda: client.admin.command("ping"), 30, "database ping")
            client.admin.command(
                "createUser",
                self.mongo_user,
                pwd=self.mongo_password,
                roles=[{"role": "root", "db": "admin"}],
            )
            if self.security:
                self.security.create_users(client, self.database)

    def mongo(self):
        """A pymongo client for checks (close it when done)."""
        return self._mongo_client()

    def _wait_port(self, proc: Proc, port: int, timeout: float) -> None:
        def ready():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited early:\n{proc.output()[-3000:]}")
            return port_open(port)

        wait_until(ready, timeout, f"{proc.name} on port {port}")

    def create_topics(self) -> None:
        from purchases_project.topics import topics_ensure

        env = self.env()
        wait_until(
            lambda: topics_ensure(
                bootstrap_servers=self.bootstrap,
                client=self.security.kafka_client() if self.security else None,
                topics={
                    env.get("KAFKA_TOPIC", "purchases"): self.partitions,
                    env.get("KAFKA_DLQ_TOPIC", "purchases.dlq"): self.partitions,
                },
            ),
            30,
            "creating topics",
        )

    def start_web(self, role: str, **env_overrides) -> Proc:
        port = getattr(self.ports, role)
        metrics = getattr(self.ports, f"{role}_metrics")
        self._check_port_free(port, role)
        signin = self.oidc.role_env(role) if self.oidc else {}
        env = self.env(SERVICE_ROLE=role, PORT=port, METRICS_PORT=metrics, **{**signin, **env_overrides})
        env.setdefault("WEB_CONCURRENCY", "2")
        proc = self.spawn(role, [PYTHON, "-m", "purchases_project.serve"], env=env, stop_grace=30)
        url = f"http://127.0.0.1:{port}/health"
        wait_until(lambda: self._alive_and(proc, lambda: http_ok(url)), 60, f"{role} health")
        wait_until(lambda: port_open(metrics), 10, f"{role} metrics")
        return proc

    def start_consumer(self, name: str = "consumer", args: list[str] | None = None, **env_overrides) -> Proc:
        env = self.env(METRICS_PORT=self.ports.consumer_metrics if name == "consumer" else 0, **env_overrides)
        cmd = [PYTHON, "manage.py", "consume_purchases", *(args or [])]
        proc = self.spawn(name, cmd, env=env, stop_grace=30)
        if int(env["METRICS_PORT"]):
            # Serving metrics means its signal handlers are in place.
            port = int(env["METRICS_PORT"])
            wait_until(lambda: self._alive_and(proc, lambda: port_open(port)), 30, f"{name} metrics")
        return proc

    @staticmethod
    def _alive_and(proc: Proc, check) -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.output()[-3000:]}")
        return check()

    def start_infra(self) -> None:
        self.start_broker()
        self.start_mongo()
        self.create_topics()
        if self.oidc:
            self.oidc.start(self.spawn, dict(os.environ))

    def start_all(self) -> None:
        self.start_infra()
        self.start_web("ledger")
        self.start_web("storefront")
        self.start_consumer()

    def stop(self) -> None:
        """Stop every process this stack started, clients before servers."""
        order = [n for n in self.procs if n not in ("broker", "mongo")] + ["broker", "mongo"]
        for name in order:
            proc = self.procs.get(name)
            if proc is not None and proc.alive():
                proc.stop()
