"""Pins an image by digest in a kustomization's `images:` block (the release's promotion step).

    python3 .github/scripts/pin_image.py k8s/overlays/production/kustomization.yaml \
        purchase-system ghcr.io/owner/purchase-system 1.4.0 sha256:<64 hex>

Rewrites `newName`, `newTag` and `digest` of the entry named NAME and nothing else: the
file's comments and every other line stay as they are, so the pull request shows three
lines and merges beside unrelated changes. Standard library only (the release runner's
python3); tests/delivery runs it on a copy of the overlay and renders the result.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# A registry path as kustomize and the container runtimes accept it (lower case).
REPOSITORY = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+"
)
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
FIELDS = ("newName", "newTag", "digest")


class PinError(ValueError):
    """The arguments or the kustomization are not what the pin expects."""


def pin(text: str, *, name: str, new_name: str, tag: str, digest: str) -> str:
    """The kustomization text with NAME's entry pointing at new_name:tag@digest."""
    if not DIGEST.fullmatch(digest):
        raise PinError(f"not a sha256 digest: {digest!r}")
    if not REPOSITORY.fullmatch(new_name):
        raise PinError(f"not an image repository: {new_name!r}")
    if not TAG.fullmatch(tag):
        raise PinError(f"not an image tag: {tag!r}")
    lines = text.splitlines(keepends=True)
    start = _entry_start(lines, name)
    indent = len(lines[start]) - len(lines[start].lstrip(" ")) + 2  # under "- "
    end = start + 1
    while end < len(lines) and _is_field_of_entry(lines[end], indent):
        end += 1
    values = {"newName": new_name, "newTag": f'"{tag}"', "digest": digest}
    kept = [line for line in lines[start + 1 : end] if _field(line) not in FIELDS]
    fields = [f"{' ' * indent}{key}: {values[key]}\n" for key in FIELDS]
    return "".join([*lines[: start + 1], *fields, *kept, *lines[end:]])


def _entry_start(lines: list[str], name: str) -> int:
    in_images = False
    for number, line in enumerate(lines):
        if re.fullmatch(r"images:\s*", line.rstrip("\n")):
            in_images = True
        elif in_images and re.match(r"\S", line) and not line.startswith("#"):
            break  # the next top-level key: the block is over
        elif in_images and re.fullmatch(rf"\s*- name: {re.escape(name)}\s*", line.rstrip("\n")):
            return number
    raise PinError(f"no images: entry named {name!r}")


def _is_field_of_entry(line: str, indent: int) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    return len(line) - len(line.lstrip(" ")) == indent and not stripped.startswith("- ")


def _field(line: str) -> str:
    return line.strip().split(":", 1)[0]


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    path, name, new_name, tag, digest = argv
    file = Path(path)
    try:
        file.write_text(pin(file.read_text(), name=name, new_name=new_name, tag=tag, digest=digest))
    except PinError as error:
        print(f"pin_image: {error}", file=sys.stderr)
        return 1
    print(f"{path}: {name} -> {new_name}:{tag}@{digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
