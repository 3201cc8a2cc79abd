from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests.harness import BrokerProcess


@pytest.fixture(scope="session", autouse=True)
def cluster_secret_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cluster secret for every broker and `walrus-broker cluster` command the
    tests start (they inherit WALRUS_CLUSTER_SECRET_FILE). Tests of a node that makes
    its own secret remove the variable from their broker's environment."""
    path = tmp_path_factory.mktemp("secret") / "cluster_secret"
    path.write_text("compat-tests-cluster-secret-0123456789\n")
    path.chmod(0o600)
    before = os.environ.get("WALRUS_CLUSTER_SECRET_FILE")
    os.environ["WALRUS_CLUSTER_SECRET_FILE"] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop("WALRUS_CLUSTER_SECRET_FILE", None)
        else:
            os.environ["WALRUS_CLUSTER_SECRET_FILE"] = before


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A fresh one-node broker process with its own data directory."""
    process = BrokerProcess(tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()
