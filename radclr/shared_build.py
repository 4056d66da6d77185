"""Files many processes want and one builds: a file lock, a temporary name, a rename when complete.

The image store and the fixed-region radiomics array live in a cache folder shared by every run, rank and seed
on a machine. Two runs started together must not both write the same file (a process that maps a file another
one truncates dies of SIGBUS), and a build that dies must not leave a half file that a later run maps.
:func:`build_once` gives both guarantees:

* ``ready()`` is tried first without any lock (the usual case: the file is there, it is mapped at once);
* otherwise the process takes ``.<name>.lock`` (``filelock``: an ``fcntl`` lock the kernel drops when the holder
  dies, so a crashed builder never blocks the others), tries ``ready()`` again (another process may just have
  finished), and only then calls ``build()``;
* ``build()`` writes under :func:`temporary_name` names and renames them into place when complete
  (:func:`publish`); leftovers of a build that was killed are removed by the next builder, which holds the lock.

Waiting processes log once that they wait, and for what.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable, TypeVar

from filelock import FileLock, Timeout

__all__ = ["build_once", "publish", "remove_leftovers", "temporary_name"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def temporary_name(path: str | Path) -> Path:
    """``NAME.tmp-<pid>`` beside ``path``: where a build writes before :func:`publish` renames it."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def remove_leftovers(path: str | Path) -> int:
    """Delete ``NAME.tmp-*`` files of earlier builds of ``path`` that died (call with the lock held)."""
    path = Path(path)
    n = 0
    for p in path.parent.glob(f"{path.name}.tmp-*"):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    if n:
        log.info("removed %d unfinished file(s) of an interrupted build of %s", n, path)
    return n


def publish(tmp: str | Path, path: str | Path) -> None:
    """Rename a completed temporary file over ``path`` (atomic: readers see no file or the whole file; a process
    that still maps an older ``path`` keeps its own copy)."""
    os.replace(tmp, path)


def build_once(ready: Callable[[], T | None], build: Callable[[], T], lock_path: str | Path, what: str,
               *, poll_s: float = 2.0) -> T:
    """``ready()`` if it answers (not None), else ``build()`` in exactly one process at a time (see module
    docstring). ``lock_path``: the lock file (``.<name>.lock``; left in place: it is empty, and deleting a lock
    file another process may hold is not safe); ``what``: words for the log line of a process that waits."""
    hit = ready()
    if hit is not None:
        return hit
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=poll_s)
    except Timeout:
        log.info("waiting for another process that builds the %s (lock %s) ...", what, lock_path)
        t0 = time.perf_counter()
        lock.acquire()
        log.info("the %s is built (waited %.0f s)", what, time.perf_counter() - t0)
    try:
        hit = ready()
        if hit is not None:
            return hit
        return build()
    finally:
        lock.release()
