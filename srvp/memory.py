"""Keep a long CPU evaluation from growing its memory batch after batch.

glibc's ``malloc`` serves large blocks with ``mmap`` and returns them to the
system when freed, but it raises that threshold each time such a block is freed
(up to 32 MB). After a few batches, PyTorch's tensors of a few MB come from the
heap instead, and the freed parts of the heap stay with the process: evaluating
the Moving MNIST test videos grew by about 20 MB per batch of 16 videos, over
10 GB for all 5,000, although nothing was kept. Handing the free heap pages back
after each batch (``malloc_trim``) keeps the size flat
(``benchmarks/bench_eval_memory.py``). It cost no measurable time with the
protocol's 100 samples per video, and 15-19 % more time with 5 samples, where a
batch is short; serving every large block with ``mmap`` instead also kept the
size flat but doubled the time.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def _glibc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # another C library (musl), or none
        return None


def release_free_memory() -> bool:
    """Give the free pages of the C heap back to the system (glibc's
    ``malloc_trim(0)``). Returns False where there is no such call (macOS,
    Windows, other C libraries): nothing happens there."""
    trim = _glibc_trim()
    if trim is None:
        return False
    trim(0)
    return True
