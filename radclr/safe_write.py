"""Writing outputs safely: a folder that cannot be written or a disk that fills up is one clear message.

* :func:`writable_dir` -- create an output folder (run directory, cache folder, ``--out``) and prove it can be
  written *before* any work is done: a read-only folder or file system, a path through a file, a missing
  permission -> :class:`~radclr.errors.OutputError` naming the folder.
* :func:`atomic_path` -- write a file through ``NAME.tmp`` and rename it over ``NAME`` only when complete: a
  failed write (disk full, quota, I/O error) removes the ``.tmp``, leaves the previous ``NAME`` as it was (an
  earlier checkpoint stays loadable) and raises :class:`~radclr.errors.OutputError` naming ``NAME``.
* :func:`reserve` -- claim the blocks of a large file up front (the memory-mapped image store): a disk without
  room fails there, with a message, instead of the process dying of SIGBUS half-way through.
* :func:`build_once` -- a file many processes want and exactly one builds (the image store, the fixed-region
  radiomics array, shared by every run, rank and seed on a machine). Two runs started together must not both
  write the same file (a process that maps a file another one truncates dies of SIGBUS), and a build that dies must
  not leave a half file that a later run maps. ``ready()`` is tried first without any lock (the usual case: the
  file is there and is mapped at once); otherwise the process takes the lock file (``filelock``: an ``fcntl``
  lock the kernel drops when its holder dies, so a crashed builder never blocks the others), tries ``ready()``
  again (another process may just have finished) and only then builds. The build writes under
  :func:`temporary_name` names and :func:`publish` renames them into place when complete; leftovers of a build
  that was killed are removed by the next builder (:func:`remove_leftovers`, with the lock held). A process that
  waits logs once that it waits, and for what.

Errors are described in words (:func:`describe`): "no space left on the device", "read-only file system",
"permission denied", ...
"""

from __future__ import annotations

import errno
import logging
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from filelock import FileLock, Timeout

from radclr.errors import OutputError

__all__ = ["describe", "writable_dir", "atomic_path", "reserve", "build_once", "publish", "remove_leftovers",
           "temporary_name"]

log = logging.getLogger(__name__)

_WORDS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "exists and is not a folder",
    errno.EIO: "input/output error",
    errno.ENAMETOOLONG: "file name too long",
}


def describe(e: OSError) -> str:
    """A few words for an OS error (``"no space left on the device"``), else its own text."""
    return _WORDS.get(e.errno, e.strerror or str(e))


def writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) and check that a file can be written in it; :class:`OutputError` naming
    the folder if not. Works the same for root: a read-only file system refuses root too."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".radclr-write-test-{uuid.uuid4().hex[:8]}"
        with open(probe, "wb") as f:
            f.write(b"ok")
        probe.unlink()
    except OSError as e:
        raise OutputError(path, f"cannot write to the {what}: {describe(e)}") from None
    return path


@contextmanager
def atomic_path(path: str | Path, what: str = "file") -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)`` -> ``tmp`` replaces ``p`` when the block succeeds; on any
    failure the ``.tmp`` is removed and ``p`` is left untouched (an ``OSError`` becomes :class:`OutputError`)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        kept = " (the previous file is unchanged)" if path.exists() else ""
        raise OutputError(path, f"cannot write the {what}: {describe(e)}{kept}") from None
    except BaseException:
        _remove(tmp)
        raise


def reserve(fd: int, size: int, path: str | Path, what: str = "file") -> None:
    """Allocate ``size`` bytes of the open file ``fd`` now (``posix_fallocate``); :class:`OutputError` naming
    ``path`` when the disk has no room. File systems without the call are left as they are."""
    if not hasattr(os, "posix_fallocate") or size <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return
        raise OutputError(path, f"cannot write the {what} ({size / 2**20:,.1f} MiB): {describe(e)}") from None


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


# --------------------------------------------------------------------------------------------------------------
# one builder, the others wait
# --------------------------------------------------------------------------------------------------------------
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
    docstring, :func:`build_once`). ``lock_path``: the lock file (``.<name>.lock``; left in place: it is empty, and deleting a lock
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
