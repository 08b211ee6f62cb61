"""Opt-in TLS and per-client database users for a local Stack, as production runs them.

`Stack(..., security=Security(folder))` makes a throwaway certificate authority and a
server certificate for 127.0.0.1, runs the database with `--tls-*` (and `--auth`, with
one user per client: the ledger may only read, the consumer reads and writes), and puts
a TLS terminator (Debian's stunnel4) in front of the broker, whose advertised listener is
the terminator's address: the broker's own TLS flags do not work in Tansu 0.6.0, and it
cannot keep SCRAM users on the storage engines its build has (local-infra.md), so Kafka
clients speak `SSL` here and `SASL_SSL` in production. Development only.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.processes import Proc, free_port, port_open, wait_until

if TYPE_CHECKING:
    from devstack.stack import Stack

TERMINATOR = "tls-terminator"
# Each client's database user and its roles on the stack's database.
ROLES = {"ledger": "read", "consumer": "readWrite"}


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    """A certificate for `key` signed by `signer` (a CA's when `ca`, else a server's for 127.0.0.1)."""
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True)
    else:
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


@dataclass(frozen=True)
class Certificates:
    """A certificate authority and a server certificate (127.0.0.1, localhost) signed by it."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    def ensure(self) -> Certificates:
        if self.ca.exists() and self.server_cert.exists():
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        ca_key, server_key = _key(), _key()
        ca = _certificate("purchases local CA", ca_key, None, ca_key, ca=True)
        server = _certificate("127.0.0.1", server_key, ca.subject, ca_key, ca=False)
        _write_key(self.server_key, server_key)
        self.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        return self


@dataclass
class Security:
    folder: Path
    # Where the broker itself listens, behind the terminator (which takes the stack's broker port).
    broker_port: int = field(default_factory=free_port)
    passwords: dict[str, str] = field(default_factory=lambda: {n: secrets.token_urlsafe(16) for n in ROLES})

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.certs = Certificates(self.folder / "certs").ensure()

    # -- Kafka --------------------------------------------------------------

    def kafka_env(self) -> dict[str, str]:
        """The settings every Kafka client of the stack runs with."""
        return {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str(self.certs.ca)}

    def kafka_client(self) -> dict[str, str]:
        """The same, as confluent-kafka configuration (for clients made outside the settings)."""
        return {"security.protocol": "SSL", "ssl.ca.location": str(self.certs.ca)}

    def start_terminator(self, stack: Stack) -> Proc:
        """stunnel4 taking TLS on the stack's broker port to the broker's own port."""
        old = stack.procs.get(TERMINATOR)
        if old is not None and old.alive():
            return old
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        if binary is None:
            raise RuntimeError(
                "stunnel4 is missing: install the Debian package stunnel4 (scripts/setup-test.sh)"
            )
        config = self.folder / "stunnel.conf"
        config.write_text(
            "foreground = yes\n"
            f"pid =\ndebug = warning\n\n[kafka]\naccept = 127.0.0.1:{stack.ports.broker}\n"
            f"connect = 127.0.0.1:{self.broker_port}\n"
            f"cert = {self.certs.server_cert}\nkey = {self.certs.server_key}\n"
        )
        proc = stack.spawn(TERMINATOR, [binary, str(config)], stop_grace=5)

        def listening() -> bool:
            if not proc.alive():
                raise RuntimeError(f"{TERMINATOR} exited early:\n{proc.output()[-3000:]}")
            return port_open(stack.ports.broker)

        wait_until(listening, 15, f"{TERMINATOR} on port {stack.ports.broker}")
        return proc

    # -- MongoDB ------------------------------------------------------------

    def mongo_args(self) -> list[str]:
        certs = self.certs
        return [
            *("--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key)),
            *("--tls-ca-file", str(certs.ca)),
        ]

    def mongo_options(self) -> str:
        return f"tls=true&tlsCAFile={quote(str(self.certs.ca))}"

    def create_users(self, client, database: str) -> None:
        """One user per client, with only its own role on the database."""
        for name, role in ROLES.items():
            client.admin.command(
                "createUser", name, pwd=self.passwords[name], roles=[{"role": role, "db": database}]
            )

    def mongo_uri(self, port: int, client: str | None) -> str:
        """The URI `client` connects with (its own user), or one without credentials."""
        auth = f"{client}:{quote(self.passwords[client], safe='')}@" if client in ROLES else ""
        options = "directConnection=true&" + ("authSource=admin&" if auth else "") + self.mongo_options()
        return f"mongodb://{auth}127.0.0.1:{port}/?{options}"

    def env(self, stack: Stack, role: str) -> dict[str, str]:
        """A process's TLS settings and database user: the web roles' by their role, others
        (the consumer, the management commands) the consumer's."""
        return {**self.kafka_env(), "MONGODB_URI": self.mongo_uri(stack.ports.mongo, role or "consumer")}
