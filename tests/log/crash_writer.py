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
        # Every tenth batch is one record of 300 kB: a durable write that large goes
        # through the io_uring ring (linked write + fdatasync), the rest are small.
        big = tag % 10 == 5
        count = 1 if big else 1 + tag % 7
        size = 300_000 if big else 200 if tag % 3 else 20_000
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
