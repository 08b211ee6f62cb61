"""Processes run from a built image's filesystem the way a Kubernetes pod runs them,
without a container runtime (``podman run`` cannot set rlimits on these machines).

Each process gets a mount namespace of its own (``unshare --mount``) in which the image's
filesystem is bind-mounted read-only on a folder of its own, with a tmpfs on ``/tmp`` (the
pod's emptyDir), ``proc`` on ``/proc`` and a read-only ``/dev`` holding the usual device
nodes; then it is chrooted as the pod's user and group, in the image's working directory.
Those mounts exist only in that namespace and go away with the process: nothing is left
mounted on the host, whatever happens to the test. The process shares the host's network
namespace, so it reaches servers on 127.0.0.1 and serves on ports of 127.0.0.1. Every step
execs the next, so the PID that Popen returns is the application process itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.procs import descendants

WRAPPER = r"""
set -eu
image=$1 root=$2 workdir=$3 user=$4 tmp_size=$5
shift 5
mount --bind -o ro "$image" "$root"
mount -t tmpfs -o nosuid,nodev,mode=1777,size="$tmp_size" tmpfs "$root/tmp"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o nosuid,noexec,mode=755,size=64k tmpfs "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
mknod -m 666 "$root/dev/full" c 1 7
mknod -m 666 "$root/dev/random" c 1 8
mknod -m 666 "$root/dev/urandom" c 1 9
mknod -m 666 "$root/dev/tty" c 5 0
mount -o remount,ro "$root/dev"
# Read-only volumes (NAME HOST_DIR pairs) under /tmp/NAME, up to "--".
while [ "$1" != -- ]; do
  mkdir "$root/tmp/$1"
  mount --bind -o ro "$2" "$root/tmp/$1"
  shift 2
done
shift
if [ "$user" = root ]; then
  exec chroot "$root" /usr/bin/env --chdir="$workdir" "$@"
fi
exec chroot --userspec="$user" --groups="${user#*:}" "$root" /usr/bin/env --chdir="$workdir" "$@"
"""


@dataclass
class Image:
    """A built image: its configuration and its filesystem, mounted by podman."""

    name: str
    inspect: dict
    path: Path  # `podman image mount`

    @classmethod
    def mount(cls, name: str) -> Image:
        inspect = json.loads(_podman("image", "inspect", name))[0]
        return cls(name, inspect, Path(_podman("image", "mount", name).strip()))

    def unmount(self) -> None:
        _podman("image", "unmount", self.name)

    @property
    def config(self) -> dict:
        return self.inspect["Config"]

    @property
    def user(self) -> str:
        return self.config["User"]

    @property
    def env(self) -> dict[str, str]:
        """The image's ENV, which a container runtime puts under the pod's own."""
        return dict(item.split("=", 1) for item in self.config.get("Env", []))

    def home(self, uid: int) -> str:
        """The home folder /etc/passwd gives the uid (a runtime sets HOME from it)."""
        for line in (self.path / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[2] == str(uid):
                return fields[5]
        return "/"

    def command(
        self,
        argv: list[str],
        mountpoint: Path,
        *,
        user: str | None = None,
        volumes: dict[str, Path] | None = None,
        tmp_size: str = "192m",
    ) -> list[str]:
        """The host command that runs argv inside the image (start it as root)."""
        mountpoint.mkdir(parents=True, exist_ok=True)
        volume_args = [str(x) for name, host in (volumes or {}).items() for x in (name, host)]
        return [
            shutil.which("unshare") or "unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            WRAPPER,
            "run-in-image",
            str(self.path),
            str(mountpoint),
            self.config.get("WorkingDir") or "/",
            user or self.user,
            tmp_size,
            *volume_args,
            "--",
            *argv,
        ]


def _podman(*args: str) -> str:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"podman {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


# --- what the kernel says about a running process ----------------------------------------


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    return [pid, *descendants(pid)]


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, value in (line.split(":", 1) for line in lines)}


def listening_ports(pids: list[int]) -> set[int]:
    """The TCP ports the processes listen on (host network namespace)."""
    inodes = set()
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir() if fds.exists() else []:
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def writable_mounts(pid: int) -> dict[str, str]:
    """Mount point -> filesystem type of every writable mount the process can see
    (writable: neither the mount nor its filesystem is read-only)."""
    found = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        before, after = line.split(" - ", 1)
        fields, fs_fields = before.split(), after.split()
        if "rw" in fields[5].split(",") and "rw" in fs_fields[2].split(","):
            found[fields[4]] = fs_fields[0]
    return found
