"""Writing outputs safely: a folder that cannot be written or a disk that fills up is one clear message.

* :func:`writable_dir` -- create an output folder (run directory, cache folder, ``--out``) and prove it can be
  written *before* any work is done: a read-only folder or file system, a path through a file, a missing
  permission -> :class:`~radclr.errors.OutputError` naming the folder.
* :func:`atomic_path` -- write a file through ``NAME.tmp`` and rename it over ``NAME`` only when complete: a
  failed write (disk full, quota, I/O error) removes the ``.tmp``, leaves the previous ``NAME`` as it was (an
  earlier checkpoint stays loadable) and raises :class:`~radclr.errors.OutputError` naming ``NAME``.
* :func:`reserve` -- claim the blocks of a large file up front (the memory-mapped image store): a disk without
  room fails there, with a message, instead of the process dying of SIGBUS half-way through.

Errors are described in words (:func:`describe`): "no space left on the device", "read-only file system",
"permission denied", ...
"""

from __future__ import annotations

import errno
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from radclr.errors import OutputError

__all__ = ["describe", "writable_dir", "atomic_path", "reserve"]

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
