"""Compiled (numba) kernels of the CPU fast path: the per-pixel counting passes of the radiomics engine.

The torch engine builds every PyRadiomics matrix with a sequence of whole-batch tensor passes (``bincount``,
``unique_consecutive``, shifted comparisons). On a CPU those passes are single-threaded memory sweeps; here each
matrix is built by one compiled loop per region that reads the region's gray-level map once (it stays in L1/L2),
and regions are spread over threads. One module per responsibility:

* :mod:`.binning`  -- intensity range scan and PyRadiomics' discretisation (gray-level map, value histogram);
* :mod:`.glcm`     -- co-occurrence counts ``P(i, j | angle)``;
* :mod:`.glrlm`    -- run-length counts ``P(i, j | angle)``, PyRadiomics' "line with two pixels" test, and the
  16 GLRLM features from the counts' non-zero cells;
* :mod:`.glszm`    -- zones (8-connected components of one gray level): their level and size;
* :mod:`.neighbourhood` -- the 8-neighbourhood pass: GLDM dependence counts and NGTDM tone differences;
* :mod:`.shape2d`  -- crossings, marching-squares cell classes, moment sums and the contour's convex hull.

Feature formulas are not duplicated (GLRLM's excepted, tested against the torch formulas): the matrices go into
``RegionBatch.cache`` and the torch feature classes read them instead of building their own
(``radclr.radiomics.kernel_backend``). Every kernel processes the regions
``start:stop`` of a padded batch and releases the GIL (``nogil``), so :func:`run_regions` spreads chunks of
regions over a small pool of Python threads -- no OpenMP/TBB layer, hence no spin-waiting threads on a busy
machine (see ``docs/radiomics.md``).

numba is optional: when it cannot be imported, ``AVAILABLE`` is False, ``REASON`` says why and the engine uses
the torch path (``radclr.radiomics.kernel_backend`` logs it once). Compiled code is cached on disk (``cache=True``: next to
this package when writable, else numba's user cache; ``NUMBA_CACHE_DIR`` overrides), so only the very first call
on a machine pays the compilation.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["AVAILABLE", "REASON", "njit", "run_regions", "numba_version"]

try:  # pragma: no cover - exercised by the environment, not by a test
    if os.environ.get("RADCLR_DISABLE_NUMBA", "") not in ("", "0"):
        raise ImportError("RADCLR_DISABLE_NUMBA is set")
    import numba as _numba

    AVAILABLE = True
    REASON = ""
except ImportError as e:  # pragma: no cover
    _numba = None
    AVAILABLE = False
    REASON = str(e)


def numba_version() -> str | None:
    return None if _numba is None else _numba.__version__


def njit(fn):
    """``numba.njit`` as every kernel uses it: no Python objects, GIL released, cached on disk, no bounds checks.

    ``fastmath`` stays off: the float arithmetic (bin edges) must round exactly as numpy/torch do. Without numba
    the function is returned unchanged (never called: the torch path is used).
    """
    if _numba is None:
        return fn
    return _numba.njit(nogil=True, cache=True, boundscheck=False)(fn)


_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the parent's pool threads do not exist: start a new pool there when needed."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="radclr-radiomics")
            _pool_size = threads
        return _pool


def run_regions(kernel, n_regions: int, threads: int, *args) -> None:
    """Call ``kernel(start, stop, *args)`` over chunks covering ``0..n_regions``, on ``threads`` threads.

    Chunks are handed out one at a time from a shared counter (dynamic scheduling): a thread that the OS
    deschedules on a busy machine delays only the chunk it holds, the other threads take the rest. With one
    thread, or few regions, the kernel runs in the calling thread.
    """
    if n_regions <= 0:
        return
    threads = max(1, min(int(threads), n_regions))
    if threads == 1:
        kernel(0, n_regions, *args)
        return
    chunk = max(1, n_regions // (4 * threads))
    starts = itertools.count(0, chunk)  # next() on a count is atomic under the GIL

    def work() -> None:
        while True:
            start = next(starts)
            if start >= n_regions:
                return
            kernel(start, min(n_regions, start + chunk), *args)

    pool = _executor(threads)
    futures = [pool.submit(work) for _ in range(threads - 1)]
    work()  # the calling thread works too
    for f in futures:
        f.result()
