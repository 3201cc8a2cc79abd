"""Evidence for a fault test that found a record stored twice: which batches hold it,
on which node, under which producer id, epoch and sequence, and in which segment.

A second copy under a new producer epoch means the client re-sent the record (an
epoch bump after a refusal); the same epoch and sequence at two offsets means a
leader accepted a retry it should have recognised. The broker lines that refused a
sequence tell which answer the client reacted to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from broker.protocol.records import RecordError, decode_records, iter_batches

# Broker log lines about producer sequences and epochs (ProducerStateTable refusals,
# truncations and producer state resets): what a duplicate's story is made of.
_SEQUENCE_LINES = re.compile(
    r"expected sequence|must start at sequence|is older than|producer state|truncating|"
    r"sealed it at|starting afresh|held back")


def batches_holding(data_dir: Path, topic: str, values: Iterable[bytes]) -> list[str]:
    """One line per batch in `data_dir` whose records include one of `values`."""
    wanted = set(values)
    out = []
    for path in sorted((data_dir / "logs").glob(f"{topic}-*/*.log")):
        data = path.read_bytes()
        for pos, header in iter_batches(data, validate=False, allow_partial_tail=True):
            try:
                _, records = decode_records(data, pos)
            except RecordError:
                continue
            found = sorted({r.value for r in records if r.value in wanted})
            if found:
                out.append(
                    f"{path.parent.name}/{path.name}: offsets {header.base_offset}-{header.last_offset} "
                    f"segment epoch {header.partition_leader_epoch} producer {header.producer_id} "
                    f"epoch {header.producer_epoch} sequence {header.base_sequence}"
                    f"+{header.records_count - 1}: {[v.decode(errors='replace') for v in found]}")
    return out


def sequence_lines(log_path: Path, limit: int = 20) -> list[str]:
    """The broker's own lines about producer sequences, truncations and failovers."""
    lines = [line for line in log_path.read_text(errors="replace").splitlines()
             if _SEQUENCE_LINES.search(line)]
    return lines[-limit:]
