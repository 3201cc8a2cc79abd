"""Writer process for the crash test: appends until killed, reporting each ack.

Each line on stdout is "ack <base> <next> <tag> <flushed> <file_base> <file_size>"
and is printed only after append() returned.
"""

from __future__ import annotations

import sys

from broker.log import LogConfig, PartitionLog
from broker.protocol.records import encode_batch


def main() -> None:
    directory, backend, flush_messages, first_tag = sys.argv[1:5]
    config = LogConfig(
        segment_bytes=256 * 1024,
        index_interval_bytes=1024,
        flush_messages=int(flush_messages),
        io_backend=backend,
    )
    log = PartitionLog.open(directory, config)
    print("ready", log.log_end_offset, flush=True)
    tag = int(first_tag)
    while True:
        count = 1 + tag % 7
        size = 200 if tag % 3 else 20_000
        records = [(b"%d" % tag, (b"%d:%d:" % (tag, i)).ljust(size, b"v")) for i in range(count)]
        result = log.append(encode_batch(records, base_timestamp=tag))
        active = log._files[-1]
        print(
            "ack",
            result.first_offset,
            result.log_end_offset,
            tag,
            log.flushed_offset,
            active.base_offset,
            active.size,
            flush=True,
        )
        tag += 1


if __name__ == "__main__":
    main()
