#!/usr/bin/env bash
# `make image`: builds the application image (IMAGE, default purchase-system:dev) with podman.
#
# The base is the official python:3.11-slim where it can be pulled. Where it cannot, the
# image is built on a stand-in made from Debian bookworm's own packages (debootstrap), and
# the output says so loudly: Debian's Python 3.11 lives under /usr, the official image's under
# /usr/local, so such an image proves the Dockerfile and the roles, not a release. The
# stand-in's root filesystem is cached in .local/image/ (about 200 MB); the first run
# builds it (about a minute) and prints what it cost.
#
#   IMAGE_BASE=auto (default) | official | standin
# Needs root (podman's storage, debootstrap); installs both when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-purchase-system:dev}"
IMAGE_BASE="${IMAGE_BASE:-auto}"
OFFICIAL_BASE="docker.io/library/python:3.11-slim"
STANDIN_BASE="localhost/purchase-system-base:bookworm-standin"
STANDIN_SUITE="bookworm"  # Debian's Python 3.11
STANDIN_PACKAGES="python3,python3-venv,python3-pip,ca-certificates"
CACHE="${IMAGE_CACHE:-.local/image}"
# pip inside the build must trust what this machine trusts (e.g. a proxy's CA).
CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"
started=$(date +%s)

say() { echo "make image: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (podman's storage and debootstrap need it)"
./scripts/debian-packages.sh podman debootstrap

# The Debian archive this machine's apt uses (no mirror is written down here).
debian_mirror() {
  apt-get indextargets --format '$(URI)' 2>/dev/null |
    grep -m1 -E "/dists/[a-z]+/main/binary-" | sed 's#/dists/.*##'
}

# Builds (or reuses) the stand-in's root filesystem as a tarball and imports it into podman.
standin_base() {
  local tarball="$CACHE/standin-$STANDIN_SUITE.tar"
  local key
  key=$(printf '%s\n' "$STANDIN_SUITE" "$STANDIN_PACKAGES" "$(sha256sum "$CA_BUNDLE")" | sha256sum | cut -c1-16)
  if [ ! -f "$tarball" ] || [ "$(cat "$tarball.key" 2>/dev/null)" != "$key" ]; then
    local mirror rootfs="$CACHE/standin-rootfs.tmp" t0
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || die "no Debian archive found in apt's sources"
    t0=$(date +%s)
    say "building the base stand-in's root filesystem (debootstrap $STANDIN_SUITE; first run only) ..."
    mkdir -p "$CACHE"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include="$STANDIN_PACKAGES" "$STANDIN_SUITE" "$rootfs" "$mirror" \
      >"$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE/debootstrap.log"
    cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    ln -sfn python3 "$rootfs/usr/bin/python"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    rm -rf "$rootfs"
    mv "$tarball.tmp" "$tarball"
    echo "$key" >"$tarball.key"
    podman rmi -f "$STANDIN_BASE" >/dev/null 2>&1 || true
    say "base stand-in's root filesystem: $(( $(date +%s) - t0 ))s, $(du -h "$tarball" | cut -f1) (cached as $tarball)"
  fi
  if [ "$(podman image inspect --format '{{index .Labels "standin-key"}}' "$STANDIN_BASE" 2>/dev/null)" != "$key" ]; then
    podman import --quiet \
      --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
      --change "ENV LANG=C.UTF-8" \
      --change "LABEL standin-key=$key" \
      --change 'CMD ["python3"]' \
      "$tarball" "$STANDIN_BASE" >/dev/null
  fi
}

loud_standin_notice() {
  cat >&2 <<EOF
========================================================================================
  make image: python:3.11-slim cannot be pulled here. Building on a STAND-IN base made
  from Debian $STANDIN_SUITE's packages ($STANDIN_BASE):
  Debian's Python 3.11, under /usr (the official image's is under /usr/local).
  Good for checking the Dockerfile and the three roles; NOT a release image.
========================================================================================
EOF
}

base=""
case "$IMAGE_BASE" in
  official | auto)
    if podman image exists "$OFFICIAL_BASE" || timeout 120 podman pull --quiet "$OFFICIAL_BASE" >/dev/null 2>&1; then
      base="$OFFICIAL_BASE"
    elif [ "$IMAGE_BASE" = official ]; then
      die "cannot pull $OFFICIAL_BASE"
    fi
    ;;
  standin) ;;
  *) die "IMAGE_BASE must be auto, official or standin (got $IMAGE_BASE)" ;;
esac
if [ -z "$base" ]; then
  loud_standin_notice
  standin_base
  base="$STANDIN_BASE"
fi

t0=$(date +%s)
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
# chroot isolation: no cgroups or user namespaces needed (CI machines and sandboxes lack them).
podman build --pull=never --isolation=chroot --network=host --format docker --quiet \
  --build-arg "BASE_IMAGE=$base" --label "org.opencontainers.image.base.name=$base" \
  -t "$IMAGE" . >/dev/null
current=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true  # the image this one replaces, unless still in use
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "$IMAGE built on $base in $(( $(date +%s) - t0 ))s ($(( size / 1000000 )) MB); total $(( $(date +%s) - started ))s"
