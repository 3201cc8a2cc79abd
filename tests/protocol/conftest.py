"""Summary line for the kafka-python oracle (visible without -s)."""

from __future__ import annotations

import pytest
from kafka_schema_strategies import ORACLE_PAIRS


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    pairs = config.stash.get(ORACLE_PAIRS, None)
    if pairs:
        apis = len({name for name, _ in pairs})
        terminalreporter.write_line(
            f"protocol oracle: kafka-python agreed on {len(pairs)} (message, version) pairs "
            f"across {apis} messages"
        )
