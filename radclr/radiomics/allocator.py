"""Keep freed memory in the process for the next group's tensors (glibc ``mallopt``), opt-in.

The torch engine allocates and frees tensors of a few MB for every group of regions. With glibc's defaults such
blocks are returned to the system on free and page-faulted in again on the next allocation; on a virtual
machine that first touch costs as much as the arithmetic (measured: ``prepare`` 2.0 -> 0.9 ms per 224x224
region). ``tune_malloc`` raises the mmap threshold (to glibc's maximum, 32 MiB) and the trim threshold so that
those blocks are reused. It changes the whole process's allocator (freed memory is kept, up to the trim
threshold), so radclr's own entry points call it (``radclr radiomics extract|bench``, the benchmark) and a
training loop that extracts radiomics every epoch may call it once too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["tune_malloc"]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_applied: bool | None = None


def tune_malloc(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 256 * 2**20) -> bool:
    """Apply the glibc settings once per process; True when applied (False on other C libraries)."""
    global _applied
    if _applied is not None:
        return _applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _applied = False
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    log.debug("glibc mallopt mmap_threshold=%d trim_threshold=%d: %s", mmap_threshold, trim_threshold, ok)
    _applied = ok
    return ok
