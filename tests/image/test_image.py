"""The image, built and run the way the cluster runs it.

`scripts/build-image.sh` builds the image (or finds it up to date). Its three roles then
start from the image's filesystem as their Deployments in k8s/ (rendered with kustomize)
run them: the manifest's command, the image's ENV under the ConfigMap's and the
container's env, uid and gid 10001, a read-only root with only /tmp writable. They talk
to a broker and a database that this module starts on free ports of 127.0.0.1; the only
differences from the pod's environment are in `local_overrides` (addresses and ports,
since everything here shares one network namespace). Needs root (podman, mounts,
chroot): `make test` runs as root in CI, and this module fails rather than skips.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from devstack.stack import Proc, Stack, http_ok, port_open, wait_until
from purchases_project.local_issuer import LocalIssuer
from tests.image.rootfs import Image, listening_ports, process_tree, status, writable_mounts
from tests.k8s.manifests import app_config, containers, one, pod_spec, render

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("IMAGE", "purchase-system:dev")
# What the image adds to its base (virtualenv, code, static files); measured ~107 MB.
OWN_LAYERS_BUDGET_MB = 150
# Role -> (Deployment, stack port for PORT or None, stack port for METRICS_PORT).
ROLES = {
    "storefront": ("storefront", "storefront", "storefront_metrics"),
    "ledger": ("ledger", "ledger", "ledger_metrics"),
    "consumer": ("purchase-consumer", None, "consumer_metrics"),
}
# The build's first run (the base stand-in, the virtualenv) needs more than pytest's default.
pytestmark = pytest.mark.timeout(900)


# --- authentication: the one place the test's auth settings live ------------------------


@dataclass
class Auth:
    """What the web roles need to verify tokens, and what the test's API requests carry."""

    issuer: LocalIssuer
    env: dict[str, str] = field(default_factory=dict)  # both web roles' environment
    volumes: dict[str, Path] = field(default_factory=dict)  # NAME -> host folder at /tmp/NAME (read-only)

    def headers(self, userid: str) -> dict[str, str]:
        """Headers of POST /buy and the purchase lists, for the customer userid."""
        return {"Authorization": f"Bearer {self.issuer.token(userid)}"}


@pytest.fixture(scope="module")
def auth(tmp_path_factory) -> Auth:
    """A local issuer; the web roles read its public JWKS (only that) from a read-only volume,
    as the cluster's pods read the issuer's keys from a ConfigMap or over https."""
    issuer = LocalIssuer(tmp_path_factory.mktemp("image-issuer")).ensure()
    public = tmp_path_factory.mktemp("image-jwks")
    (public / "jwks.json").write_text(issuer.jwks_path.read_text())
    public.chmod(0o755)
    (public / "jwks.json").chmod(0o644)
    return Auth(
        issuer=issuer,
        env={**issuer.env(), "AUTH_JWKS_URL": "file:///tmp/auth/jwks.json"},
        volumes={"auth": public},
    )


# --- fixtures -----------------------------------------------------------------------------


def say(request: pytest.FixtureRequest, line: str) -> None:
    """A line on pytest's terminal even when output is captured."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="module")
def image(request) -> Image:
    assert os.geteuid() == 0, "the image test needs root (podman, mounts, chroot): run `make test` as root"
    started = time.monotonic()
    result = subprocess.run(
        [str(REPO / "scripts/build-image.sh")],
        cwd=REPO,
        env={**os.environ, "IMAGE": IMAGE},
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    for line in result.stderr.splitlines():
        say(request, line)
    assert result.returncode == 0, f"build-image.sh failed:\n{result.stdout}\n{result.stderr}"
    say(request, f"image test: build step {time.monotonic() - started:.0f}s")
    mounted = Image.mount(IMAGE)
    try:
        yield mounted
    finally:
        mounted.unmount()


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    return render("k8s/overlays/production")


@pytest.fixture(scope="module")
def infra(tmp_path_factory, manifests) -> Stack:
    """Broker and database only; the roles come from the image."""
    s = Stack(
        tmp_path_factory.mktemp("image-stack"),
        partitions=int(app_config(manifests)["KAFKA_TOPIC_PARTITIONS"]),
        mongo_user="purchases",
        mongo_password=secrets.token_urlsafe(16),
    )
    try:
        s.start_infra()
        yield s
    finally:
        s.stop()


def container_of(manifests: list[dict], role: str) -> dict:
    return containers(one(manifests, "Deployment", ROLES[role][0]))[0]


def pod_of(manifests: list[dict], role: str) -> dict:
    return pod_spec(one(manifests, "Deployment", ROLES[role][0]))


def local_overrides(infra: Stack, role: str) -> dict[str, str]:
    """Where this machine differs from a pod: one network namespace for everything."""
    _, port, metrics = ROLES[role]
    env = {
        "BIND_ADDRESS": "127.0.0.1",
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "LEDGER_API_URL": infra.ledger_url,
        "METRICS_PORT": str(getattr(infra.ports, metrics)),
        # The local broker holds group joins for half the session timeout (local-infra quirk 1).
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        # The cluster's listener is TLS with each client's SCRAM user; the local broker is plain.
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "",
        "KAFKA_SASL_USERNAME": "",
        "KAFKA_SASL_PASSWORD": "",
        "KAFKA_SSL_CA_LOCATION": "",
    }
    if port:
        env["PORT"] = str(getattr(infra.ports, port))
    return env


def pod_env(
    image: Image, manifests: list[dict], role: str, secret_values: dict[str, str], overrides: dict[str, str]
) -> dict[str, str]:
    """The environment Kubernetes gives the role's container (image ENV, envFrom, env), with
    overrides last; a variable that is overridden need not be resolvable here."""
    container = container_of(manifests, role)
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in manifests if d["kind"] == "ConfigMap"}
    uid = int(image.user.split(":")[0])
    env = {**image.env, "HOME": image.home(uid), "HOSTNAME": f"{ROLES[role][0]}-image-test"}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"{role}: envFrom {source} is not supported here"
        env.update(config_maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if var["name"] in overrides:
            continue
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "secretKeyRef" in ref:
            key = ref["secretKeyRef"]["key"]
            if ref["secretKeyRef"].get("optional") and key not in secret_values:
                continue
            assert key in secret_values, f"{role} reads secret key {key}: give the image test a value for it"
            env[var["name"]] = secret_values[key]
        elif "configMapKeyRef" in ref:
            env[var["name"]] = config_maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        else:
            raise AssertionError(f"{role}: env {var['name']} from {ref} is not supported here")
    return env | overrides


@dataclass
class Role:
    name: str
    proc: Proc
    container: dict
    env: dict[str, str]
    volumes: dict[str, Path]
    root: Path  # the folder it is chrooted into

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def check_alive(self) -> None:
        if not self.proc.alive():
            raise AssertionError(
                f"{self.name} exited ({self.proc.popen.returncode}):\n{self.proc.output()[-3000:]}"
            )


@pytest.fixture(scope="module")
def roles(image, manifests, infra, auth, tmp_path_factory, request) -> dict[str, Role]:
    mountpoints = tmp_path_factory.mktemp("image-roots")
    # The cluster gives the ledger and the consumer users of their own; here both use the stack's.
    secret_values = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(32),
        "IDEMPOTENCY_SECRET": secrets.token_urlsafe(32),
        "MONGODB_URI": infra.mongo_uri,
    }
    started: dict[str, Role] = {}
    t0 = time.monotonic()
    try:
        for name in ROLES:
            container = container_of(manifests, name)
            web = ROLES[name][1] is not None  # storefront and ledger
            overrides = local_overrides(infra, name) | (auth.env if web else {})
            env = pod_env(image, manifests, name, secret_values, overrides)
            volumes = auth.volumes if web else {}
            cmd = image.command(container["command"], mountpoints / name, volumes=volumes)
            proc = infra.spawn(name, cmd, env=env, stop_grace=60)
            started[name] = Role(name, proc, container, env, volumes, mountpoints / name)
        for role in started.values():
            metrics = int(role.env["METRICS_PORT"])

            def ready(role=role, metrics=metrics) -> bool:
                role.check_alive()
                return port_open(metrics) and ("PORT" not in role.env or http_ok(f"{role.url}/health"))

            wait_until(ready, 120, f"{role.name} from the image")
        say(request, f"image test: three roles up from the image in {time.monotonic() - t0:.1f}s")
        yield started
    finally:
        for role in started.values():
            role.proc.stop()


# --- the image against the manifests --------------------------------------------------------


def test_dockerfile_base_defaults_to_the_official_tagged_image():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", dockerfile, re.M)
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert froms and set(froms) == {"${BASE_IMAGE}"}, froms


def test_image_is_what_the_manifests_assume(image, manifests):
    exposed = {int(p.split("/")[0]) for p in image.config.get("ExposedPorts", {})}
    for name in ROLES:
        pod = pod_of(manifests, name)
        user = f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
        assert image.user == user, f"{name}: the pod runs as {user}, the image as {image.user}"
        container = container_of(manifests, name)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert set(ports.values()) <= exposed, f"{name}: {ports} not all in EXPOSE {exposed}"
        env = {v["name"]: v.get("value") for v in container.get("env", [])}
        assert int(app_config(manifests)["METRICS_PORT"]) == ports["metrics"]
        if "http" in ports:
            assert int(env["PORT"]) == ports["http"], f"{name}: PORT and containerPort differ"
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    assert image.env["PATH"].startswith("/opt/venv/bin:")
    assert os.path.lexists(image.path / "opt/venv/bin/python")  # a link into the image's /usr
    assert (image.path / image.config["WorkingDir"].lstrip("/") / "manage.py").is_file()
    static = image.path / "app/staticfiles"
    collected = [p for p in static.rglob("*") if p.is_file()]
    assert len(collected) > 50, f"collectstatic output missing from {static}"
    assert any(p.suffix == ".gz" for p in collected), "no compressed static files"


def test_image_size(image, request):
    total = image.inspect["Size"]
    base_name = image.config.get("Labels", {}).get("org.opencontainers.image.base.name", "")
    base = json.loads(subprocess.check_output(["podman", "image", "inspect", base_name]))[0]["Size"]
    own = total - base
    say(
        request,
        f"image {IMAGE}: {total / 1e6:.0f} MB ({base_name} {base / 1e6:.0f} MB + own {own / 1e6:.0f} MB)",
    )
    assert own < OWN_LAYERS_BUDGET_MB * 1e6, f"the image's own layers grew to {own / 1e6:.0f} MB"


# --- the roles, as the cluster runs them ---------------------------------------------------


def test_each_role_runs_its_manifest_command_as_uid_10001_on_a_read_only_root(roles):
    for role in roles.values():
        role.check_alive()
        assert Path(f"/proc/{role.proc.pid}/root").readlink() == role.root, "not in the image's filesystem"
        cmdline = Path(f"/proc/{role.proc.pid}/cmdline").read_bytes().split(b"\0")[:-1]
        argv = [part.decode() for part in cmdline]
        assert argv[0].endswith("python") and argv[1:] == role.container["command"][1:], argv
        for pid in process_tree(role.proc.pid):
            st = status(pid)
            assert st["Uid"].split() == ["10001"] * 4, (role.name, pid, st["Uid"])
            assert st["Gid"].split() == ["10001"] * 4, (role.name, pid, st["Gid"])
            assert st["Groups"] == "10001", (role.name, pid, st["Groups"])
            assert st["CapEff"] == "0000000000000000", (role.name, pid, st["CapEff"])
        assert writable_mounts(role.proc.pid) == {"/tmp": "tmpfs", "/proc": "proc"}


def test_each_role_listens_on_the_ports_its_manifest_names(roles):
    for role in roles.values():
        names = {p["name"] for p in role.container["ports"]}
        expected = {int(role.env["METRICS_PORT"])} | ({int(role.env["PORT"])} if "http" in names else set())
        assert listening_ports(process_tree(role.proc.pid)) == expected, role.name
        assert http_ok(f"http://127.0.0.1:{role.env['METRICS_PORT']}/metrics")


def test_a_purchase_goes_through_the_containerised_roles(roles, infra, auth):
    userid = f"u-{uuid.uuid4().hex[:12]}"
    body = {"username": "image", "userid": userid, "price": "29.99"}
    storefront, ledger = roles["storefront"].url, roles["ledger"].url
    answer = requests.post(f"{storefront}/buy", json=body, headers=auth.headers(userid), timeout=10)
    assert answer.status_code == 201, answer.text
    purchase_id = answer.json()["data"]["purchase_id"]

    def listed():
        got = requests.get(f"{storefront}/getAllUserBuys/{userid}", headers=auth.headers(userid), timeout=10)
        assert got.status_code == 200, got.text
        return got.json() if got.json()["count"] else None

    page = wait_until(listed, 60, "the purchase in the storefront's list", interval=0.2)
    assert [p["purchase_id"] for p in page["purchases"]] == [purchase_id]
    assert page["total_spent"] == 29.99
    direct = requests.get(f"{ledger}/purchases/{userid}", headers=auth.headers(userid), timeout=10)
    assert direct.status_code == 200 and direct.json()["count"] == 1, direct.text
    with infra.mongo() as client:
        stored = client[infra.database]["purchases"].find_one({"purchase_id": purchase_id})
    assert stored is not None and stored["userid"] == userid


def test_static_files_are_served_from_the_collected_copy(roles, image):
    for name in ("storefront", "ledger"):
        docs = requests.get(f"{roles[name].url}/api/docs/", timeout=10)
        assert docs.status_code == 200, docs.text
        urls = set(re.findall(r"""["'](/static/[^"']+)["']""", docs.text))
        assert urls, f"{name}: /api/docs/ links no static files"
        for url in urls:
            path = url.split("?")[0].removeprefix("/static/")
            assert (image.path / "app/staticfiles" / path).is_file(), f"{path} was not collected"
            got = requests.get(f"{roles[name].url}{url}", timeout=10)
            assert got.status_code == 200 and got.content, f"{name} {url}: {got.status_code}"


def test_nothing_is_written_outside_tmp(roles, image, manifests, request):
    for role in roles.values():
        role.check_alive()
        log = role.proc.output()
        assert "Read-only file system" not in log, f"{role.name} tried to write outside /tmp:\n{log[-3000:]}"
        tmp = Path(f"/proc/{role.proc.pid}/root/tmp")
        files = [p for p in tmp.rglob("*") if p.is_file()]
        used = sum(p.stat().st_size for p in files)
        pod = pod_of(manifests, role.name)
        limit = next(v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if v["name"] == "tmp")
        assert used < int(limit.removesuffix("Mi")) * 2**20 / 2, f"{role.name}: {used} bytes in /tmp"
        say(request, f"{role.name} wrote {len(files)} files, {used // 1024} KiB, in /tmp (limit {limit})")
    # Not even root can write to the image's filesystem as it is mounted for the roles, nor
    # to a volume (the way Auth.volumes reach the web roles).
    workdir = Path(roles["storefront"].proc.log).parent
    volume = workdir / "probe-volume"
    volume.mkdir(exist_ok=True)
    (volume / "given.txt").write_text("from the host")
    probe = (
        "import errno\n"
        "dirs = ('/', '/app', '/app/staticfiles', '/opt/venv', '/etc', '/var', '/usr/local', '/tmp/vol')\n"
        "for d in dirs:\n"
        "    try:\n"
        "        open(d + '/probe', 'w')\n"
        "        print('written', d)\n"
        "    except OSError as e:\n"
        "        assert e.errno == errno.EROFS, (d, e)\n"
        "assert open('/tmp/vol/given.txt').read() == 'from the host'\n"
        "open('/tmp/probe', 'w').write('x')\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        image.command(["python", "-c", probe], workdir / "probe-root", user="root", volumes={"vol": volume}),
        env=image.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


def test_each_role_stops_cleanly_on_sigterm(roles, manifests):
    """Last: what a rolling update does to each pod (exit 0 within the grace period)."""
    for role in roles.values():
        role.check_alive()
        grace = pod_of(manifests, role.name)["terminationGracePeriodSeconds"]
        t0 = time.monotonic()
        code = role.proc.stop(grace=grace)
        took = time.monotonic() - t0
        assert code == 0, f"{role.name} exited {code} on SIGTERM:\n{role.proc.output()[-3000:]}"
        assert took < grace, f"{role.name} took {took:.0f}s to stop (grace {grace}s)"
