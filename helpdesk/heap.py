"""The garbage collector's settings for the long-running processes (web and worker).

By the time a process serves, it holds hundreds of thousands of objects that live as long
as it does: modules, SQLAlchemy's mappers and compiled statements, the urgency model, the
language identifier. CPython's full collections walk all of them every time: in a worker
importing the 1,000-mail burst (issue 17) they took ~420 ms of its ~3.6 s of CPU in four
collections of ~100 ms each, and all collections together ~510 ms (14%). Frozen once
start-up is done (`gc.freeze`: moved to a generation the collector never scans) and with a
larger youngest generation, the same import spent ~70-80 ms in the collector.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations before a young collection (CPython's default: 700)


def freeze_startup_objects() -> None:
    """Call once start-up is over: what is alive now is left out of every later collection
    (garbage made from now on is collected as before, just in larger young batches)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
