"""Puts tests/ on sys.path before any test module is imported, so helpers shared by
several test folders (node_runner) import by their plain name both from folders that are
packages (security, replication) and from ones that are not (handlers), whatever the
import mode."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
