"""A produced batch's records checked against its header (protocol.records.contents),
without holding the event loop for long, however large or deceitful the batch.

The walk costs about a microsecond of Python per record, and a compressed batch of
1 MiB may expand to the bound: tens of megabytes, millions of tiny records. So:
- a section is decompressed on the loop only while it stays within
  INLINE_SECTION_BYTES (what clients send; a few milliseconds of gzip at the most); a
  larger one is decompressed again on a worker thread (zlib and cramjam release the
  GIL), at most BIG_SECTIONS_AT_ONCE at a time in the whole process, which also bounds
  the memory that large sections hold;
- records are walked SLICE_RECORDS at a time, yielding to the loop in between.
"""

from __future__ import annotations

import asyncio
import weakref

from broker.protocol.records import (
    DEFAULT_MAX_DECOMPRESSED,
    BatchHeader,
    Compression,
    DecompressedTooLargeError,
    check_records,
    check_records_count,
    records_section,
)

# A section up to this size is decompressed on the loop: a few ms of gzip at the most,
# and what clients send (librdkafka's batch.size is 1 MB before compression) fits.
INLINE_SECTION_BYTES = 2 << 20
# Records walked between two yields to the loop: a few milliseconds.
SLICE_RECORDS = 2048
# Sections past INLINE_SECTION_BYTES being checked at once, over all connections.
BIG_SECTIONS_AT_ONCE = 2

_big_sections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def uncompressed_bound(max_message_bytes: int) -> int:
    """How far a batch's records may expand when decompressed: 64 MiB, or the topic's
    max.message.bytes when that is larger (an uncompressed batch may be that big)."""
    return max(DEFAULT_MAX_DECOMPRESSED, max_message_bytes)


async def check_contents(records: bytes | memoryview, header: BatchHeader, bound: int) -> None:
    """Raise RecordError unless the batch at the start of ``records`` (whose header
    validate_batch returned) holds exactly the records its header announces."""
    if header.compression == Compression.NONE:
        # Already bounded by max.message.bytes.
        await _walk(records_section(records, 0, header), header.records_count)
        return
    try:
        section = records_section(records, 0, header, max_size=min(bound, INLINE_SECTION_BYTES))
    except DecompressedTooLargeError:
        if bound <= INLINE_SECTION_BYTES:
            raise
    else:
        await _walk(section, header.records_count)
        return
    async with _big_section_slot():
        section = await asyncio.to_thread(records_section, records, 0, header, max_size=bound)
        await _walk(section, header.records_count)
        del section  # before the slot goes to the next one


async def _walk(section: bytes | memoryview, count: int) -> None:
    check_records_count(section, count)
    position = 0
    first = 0
    while True:
        stop = first + SLICE_RECORDS
        position = check_records(section, count, position=position, first=first, stop=stop)
        if stop >= count:
            return
        first = stop
        await asyncio.sleep(0)


def _big_section_slot() -> asyncio.Semaphore:
    # One per event loop: asyncio primitives belong to the loop that first waits on them.
    loop = asyncio.get_running_loop()
    slots = _big_sections.get(loop)
    if slots is None:
        slots = _big_sections[loop] = asyncio.Semaphore(BIG_SECTIONS_AT_ONCE)
    return slots
