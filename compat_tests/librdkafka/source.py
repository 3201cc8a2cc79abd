"""Fetch and unpack Debian's librdkafka source package, pinned to one version.

apt runs with its own source list, list directory and cache under the cache directory,
so the machine's apt configuration is neither read nor changed. apt checks the package
files against the signed archive index; the unpacked tree is then checked again against
the checksums and version in the .dsc.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEBIAN_VERSION = "2.0.2-1"
UPSTREAM_VERSION = "2.0.2"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"


class SourceError(RuntimeError):
    """The source package could not be fetched or did not verify."""


@dataclass(slots=True)
class SourceTree:
    root: Path
    dsc: Path
    debian_version: str


def _apt_options(apt_dir: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={apt_dir / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={apt_dir / 'sources.list.d'}",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
    ]


def _prepare_apt_dir(apt_dir: Path) -> None:
    (apt_dir / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (apt_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt_dir / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list").write_text(f"deb-src {MIRROR} {SUITE} main\n")


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("ab") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SourceError(f"{cmd[0]} {cmd[1]} failed ({proc.returncode}); log {log}:\n{tail}")


def dsc_checksums(dsc_text: str) -> dict[str, tuple[str, int]]:
    """File name -> (sha256, size) from a .dsc's Checksums-Sha256 field."""
    match = re.search(r"^Checksums-Sha256:\n((?: .+\n)+)", dsc_text, re.MULTILINE)
    if not match:
        raise SourceError("the .dsc has no Checksums-Sha256 field")
    sums: dict[str, tuple[str, int]] = {}
    for line in match.group(1).splitlines():
        digest, size, name = line.split()
        sums[name] = (digest, int(size))
    return sums


def verify_download(download_dir: Path) -> Path:
    """Check the .dsc's version and every file it lists; return the .dsc path."""
    dsc = download_dir / f"librdkafka_{DEBIAN_VERSION}.dsc"
    if not dsc.is_file():
        raise SourceError(f"apt-get source produced no {dsc.name}")
    text = dsc.read_text()
    version = re.search(r"^Version: (\S+)$", text, re.MULTILINE)
    if not version or version.group(1) != DEBIAN_VERSION:
        raise SourceError(f"expected Version {DEBIAN_VERSION} in {dsc.name}, got {version and version.group(1)}")
    for name, (digest, size) in dsc_checksums(text).items():
        data = (download_dir / name).read_bytes()
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise SourceError(f"{name} does not match the checksum in {dsc.name}")
    return dsc


def fetch_source(work_dir: Path, log: Path) -> SourceTree:
    """Download librdkafka's source package into work_dir and unpack it there."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-source") is None:
        raise SourceError("apt-get and dpkg-source are needed to fetch Debian's librdkafka source")
    apt_dir = work_dir / "apt"
    download_dir = work_dir / "download"
    _prepare_apt_dir(apt_dir)
    download_dir.mkdir(parents=True, exist_ok=True)
    options = _apt_options(apt_dir)
    _run(["apt-get", *options, "update"], work_dir, log)
    _run(["apt-get", *options, "source", "--download-only", f"librdkafka={DEBIAN_VERSION}"],
         download_dir, log)
    dsc = verify_download(download_dir)
    root = work_dir / f"librdkafka-{UPSTREAM_VERSION}"
    if root.exists():
        shutil.rmtree(root)
    _run(["dpkg-source", "-x", dsc.name, str(root)], download_dir, log)
    if not (root / "tests" / "test.c").is_file():
        raise SourceError(f"unpacked tree {root} has no tests/test.c")
    return SourceTree(root=root, dsc=dsc, debian_version=DEBIAN_VERSION)
