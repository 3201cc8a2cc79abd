"""Tests marked `io_uring` run where the probe says io_uring works in this process and
skip elsewhere, with the probe's reason (a missing or crashing binding, a kernel that
refuses io_uring)."""

from __future__ import annotations

import pytest

from broker.log.uring_probe import probe_io_uring


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("io_uring") is None:
        return
    probe = probe_io_uring()
    if not probe.ok:
        pytest.skip(f"io_uring unavailable here: {probe.reason}")
