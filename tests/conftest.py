"""Puts tests/ on sys.path before any test module is imported, so helpers shared by
several test folders (node_runner) import by their plain name both from folders that are
packages (security, replication) and from ones that are not (handlers), whatever the
import mode. Also the default `runner`: a fresh in-process node per test (a module that
wants one node for all its tests defines its own)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from node_runner import NodeRunner  # noqa: E402  (needs the path above)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[NodeRunner]:
    node = NodeRunner(tmp_path / "data")
    try:
        yield node
    finally:
        node.close()
