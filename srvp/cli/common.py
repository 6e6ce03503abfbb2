"""What every command of ``python -m srvp`` shares: its exit codes, and how an
error that is no bug (a full disk, too little memory) becomes one line.

Exit codes, the same in every command (each ``--help`` lists its own):

== ==================================================================
0  done
1  stopped early (``train``: ``--resume`` continues), or a ``data`` step
   failed (a download, missing files)
2  a wrong option or input, or too little memory: one line says which
3  the numbers went wrong (``train`` diverged; ``evaluate`` got
   non-finite scores, written as null)
4  a write failed for want of space (ENOSPC, EDQUOT); what was written
   before is intact
5  unexpected error, a bug (``--debug`` shows its traceback)
== ==================================================================
"""
from __future__ import annotations

from typing import Optional

from ..fileio import full_disk_cause

DONE, STOPPED, USAGE, NON_FINITE, DISK_FULL, BUG = 0, 1, 2, 3, 4, 5

#: Texts of the out-of-memory errors that PyTorch raises as ``RuntimeError``.
_OOM_TEXTS = ("can't allocate memory", "out of memory", "not enough memory")


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says memory ran out: ``MemoryError`` (NumPy's too), or
    PyTorch's allocation failure on the CPU or a GPU."""
    if isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(t in text for t in _OOM_TEXTS)


def resource_error(err: BaseException, hint: str = "") -> Optional[tuple]:
    """``(exit code, message)`` for an error of the machine, not of the code:
    a full disk (:data:`DISK_FULL`) or too little memory (:data:`USAGE`, with
    ``hint``, what to make smaller); None for any other error."""
    full = full_disk_cause(err)
    if full is not None:
        text = str(err) if full is err or "while writing" in str(err) else \
            f"{full.strerror or full} ({err})"
        return DISK_FULL, f"{text}: free some space, or write elsewhere"
    if out_of_memory(err):
        first = " ".join(str(err).split())[:160] or type(err).__name__
        return USAGE, f"out of memory ({first}){': ' + hint if hint else ''}"
    return None
