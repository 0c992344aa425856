"""Time-ordered UUIDs (version 7 layout), increasing within this process.

Events in one batch share ``created_at`` (the transaction's time), so their ids decide the
order of the ``(created_at, id)`` cursor: ids that increase in insertion order keep listings
and WebSocket replays in the order the events were sent.
"""

from __future__ import annotations

import os
import threading
import time
from uuid import UUID

__all__ = ["ordered_uuid"]

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def ordered_uuid() -> UUID:
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _seq += 1
            if _seq > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                _last_ms += 1
                _seq = 0
            ms = _last_ms
        else:
            _last_ms, _seq = ms, 0
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand
    return UUID(int=value)
