"""Build librdkafka 2.0.2 and its test runner once, in a cache outside the repository.

The cache is keyed by the Debian version and the configure flags; a build that did not
finish leaves no stamp, so the next run starts it over from a clean directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from compat_tests.librdkafka.source import DEBIAN_VERSION, UPSTREAM_VERSION, fetch_source

# SSL, SASL/GSSAPI and the HTTP client serve only tests outside the target set; every
# compression codec stays, because the produce and fetch paths are tested with each.
CONFIGURE_ARGS = (
    "--no-download", "--disable-ssl", "--disable-gssapi", "--disable-curl",
    "--enable-zlib", "--enable-zstd", "--enable-lz4-ext",
)
# RapidJSON lets the tests check the statistics JSON (0053) and is needed by 0101.
REQUIRED_FEATURES = ("WITH_ZLIB", "WITH_ZSTD", "WITH_LZ4_EXT", "WITH_SNAPPY", "WITH_SOCKEM",
                     "WITH_RAPIDJSON")
BUILD_PACKAGES = ("gcc", "g++", "make", "pkg-config", "zlib1g-dev", "liblz4-dev", "libzstd-dev",
                  "rapidjson-dev")
STAMP_NAME = "build.json"


class BuildError(RuntimeError):
    """librdkafka or its test runner could not be built."""


@dataclass(slots=True)
class BuildInfo:
    debian_version: str
    configure_args: list[str]
    features: list[str]
    fetch_seconds: float
    build_seconds: float
    built_at: str


@dataclass(slots=True)
class Build:
    cache_dir: Path
    source_root: Path
    info: BuildInfo
    reused: bool

    @property
    def tests_dir(self) -> Path:
        return self.source_root / "tests"

    @property
    def test_runner(self) -> Path:
        return self.tests_dir / "test-runner"

    @property
    def library_path(self) -> str:
        return os.pathsep.join([str(self.source_root / "src"), str(self.source_root / "src-cpp")])


def default_cache_dir() -> Path:
    base = os.environ.get("WALRUS_CACHE") or str(Path.home() / ".cache" / "walrus")
    return Path(base) / f"librdkafka-{UPSTREAM_VERSION}"


@contextlib.contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """One build or run at a time per cache: they share tests/test.conf."""
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_dir.parent / f"{cache_dir.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _missing_packages() -> list[str]:
    missing = []
    for package in BUILD_PACKAGES:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                              capture_output=True, text=True, check=False)
        if "install ok installed" not in proc.stdout:
            missing.append(package)
    return missing


def install_build_packages(log: Path) -> None:
    missing = _missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise BuildError(f"missing build packages {missing}; install them as root")
    with log.open("ab") as out:
        install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update"], stdout=out, stderr=subprocess.STDOUT, check=False)
            if subprocess.run(install, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode:
                raise BuildError(f"apt-get install {' '.join(missing)} failed; see {log}")


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("ab") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BuildError(f"{' '.join(cmd[:2])} failed ({proc.returncode}) in {cwd}; log {log}:\n{tail}")


def _check_features(source_root: Path) -> None:
    config_h = (source_root / "config.h").read_text()
    missing = [f for f in REQUIRED_FEATURES if f"#define {f} 1" not in config_h]
    if missing:
        raise BuildError(f"configure did not enable {missing}; see config.h in {source_root}")


def _load_stamp(cache_dir: Path) -> BuildInfo | None:
    try:
        data = json.loads((cache_dir / STAMP_NAME).read_text())
        info = BuildInfo(**data)
    except (OSError, ValueError, TypeError):
        return None
    if (info.debian_version != DEBIAN_VERSION or tuple(info.configure_args) != CONFIGURE_ARGS
            or tuple(info.features) != REQUIRED_FEATURES):
        return None
    return info


def _source_root(cache_dir: Path) -> Path:
    return cache_dir / f"librdkafka-{UPSTREAM_VERSION}"


def ensure_built(cache_dir: Path | None = None, *, jobs: int | None = None) -> Build:
    """Return the cached build, building it first when missing or incomplete."""
    cache_dir = cache_dir or default_cache_dir()
    with cache_lock(cache_dir):
        info = _load_stamp(cache_dir)
        runner = _source_root(cache_dir) / "tests" / "test-runner"
        if info is not None and os.access(runner, os.X_OK):
            return Build(cache_dir, _source_root(cache_dir), info, reused=True)
        return _build(cache_dir, jobs or os.cpu_count() or 1)


def _build(cache_dir: Path, jobs: int) -> Build:
    if cache_dir.exists():
        shutil.rmtree(cache_dir)
    cache_dir.mkdir(parents=True)
    log = cache_dir / "build.log"
    install_build_packages(log)
    started = time.monotonic()
    tree = fetch_source(cache_dir, log)
    fetched = time.monotonic()
    _run(["./configure", *CONFIGURE_ARGS], tree.root, log)
    _check_features(tree.root)
    _run(["make", f"-j{jobs}", "libs"], tree.root, log)
    _run(["make", f"-j{jobs}", "-C", "tests", "test-runner"], tree.root, log)
    if not os.access(tree.root / "tests" / "test-runner", os.X_OK):
        raise BuildError(f"make finished but produced no tests/test-runner; see {log}")
    info = BuildInfo(
        debian_version=DEBIAN_VERSION,
        configure_args=list(CONFIGURE_ARGS),
        features=list(REQUIRED_FEATURES),
        fetch_seconds=round(fetched - started, 1),
        build_seconds=round(time.monotonic() - fetched, 1),
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    # Written last: its presence is what marks the cache complete.
    (cache_dir / STAMP_NAME).write_text(json.dumps(asdict(info), indent=2) + "\n")
    return Build(cache_dir, tree.root, info, reused=False)
