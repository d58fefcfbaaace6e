"""Installing contacts-mcp the ways users do, with no network: wheels to install from, and a clean copy.

Installers need every dependency as a wheel. The tests' own environment already holds each locked
dependency (and hatchling, which builds ours), so `local_index` packs those installed distributions
back into wheels, from their RECORD, into one `--find-links` directory. uv, uvx and pip then resolve
from it with `--no-index`: nothing is fetched, whatever the machine's cache holds.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Mapping
from importlib.metadata import Distribution, distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Written by the installer, not part of what the wheel carried.
_INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json"})


def write_wheel(directory: Path, name: str, version: str, tag: str, files: Mapping[str, bytes]) -> Path:
    """A wheel of `files` (paths inside the wheel, dist-info included but RECORD, which this writes)."""
    stem = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}"
    wheel = directory / f"{stem}-{tag}.whl"
    record_path = next(path.rsplit("/", 1)[0] for path in files if path.endswith(".dist-info/METADATA")) + "/RECORD"
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in sorted(files.items()):
            archive.writestr(path, content)
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
            writer.writerow([path, f"sha256={digest}", len(content)])
        writer.writerow([record_path, "", ""])
        archive.writestr(record_path, rows.getvalue())
    return wheel


def _tag(distribution: Distribution) -> str:
    """The wheel tag from the WHEEL file's `Tag:` lines, compressed as in a wheel's file name."""
    lines = (distribution.read_text("WHEEL") or "").splitlines()
    tags = [line.removeprefix("Tag:").strip() for line in lines if line.startswith("Tag:")]
    triples = [tag.split("-") for tag in tags if tag.count("-") == 2] or [["py3", "none", "any"]]
    return "-".join(".".join(sorted({triple[part] for triple in triples})) for part in range(3))


def repack(distribution: Distribution, directory: Path) -> Path:
    """An installed distribution as a wheel again: every file its RECORD lists inside site-packages."""
    files: dict[str, bytes] = {}
    for packaged in distribution.files or []:
        path = packaged.as_posix()
        if path.startswith("..") or "__pycache__" in path:
            continue  # console scripts are made again from entry_points.txt; bytecode is the installer's
        parts = path.split("/")
        if parts[0].endswith(".dist-info") and parts[-1] in (*_INSTALLER_FILES, "RECORD"):
            continue
        files[path] = Path(str(distribution.locate_file(packaged))).read_bytes()
    return write_wheel(directory, distribution.metadata["Name"], distribution.version, _tag(distribution), files)


def local_index(directory: Path) -> Path:
    """Wheels of every distribution installed here except contacts-mcp itself, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for distribution in distributions():
        if distribution.metadata["Name"] != "contacts-mcp":
            repack(distribution, directory)
    return directory


def clean_copy(destination: Path) -> Path:
    """The repository's tracked files as they are now (uncommitted edits included), symlinks kept.

    Files git does not track stay out, as from a clone: one forgotten by `git add` fails here, not in CI.
    """
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet in the index
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return destination


def user_environment(**extra: str) -> dict[str, str]:
    """The environment a newcomer has: no provider or server settings, uv told to stay offline."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if name == "UV_CACHE_DIR"
        or not name.startswith(("COMETLY_", "HIGHLEVEL_", "CLEMTA_", "CONTACTS_MCP_", "VIRTUAL_ENV", "UV_"))
    }
    return {**kept, "UV_OFFLINE": "1", "UV_NO_CONFIG": "1", **extra}
