"""One process owns a run directory: ``RUN/run.lock`` holds the owner's pid while it trains.

Two ``radclr train`` into the same ``--out`` at once used to interleave their files (the config of one run next to
the checkpoints of the other). :func:`run_lock` takes an exclusive ``flock`` on ``RUN/run.lock`` and writes the
owner's pid, host and start time into it; the file is removed when the block ends (normally or by an error).

* Another process holding it (training, or evaluating after training): the second one stops with one line naming
  the owner (``RUN is in use by process PID``) and writes nothing; ``evaluate`` and ``report`` refuse the same way
  (:func:`check_not_locked`).
* A **stale** lock -- the file of a process that was killed (SIGKILL, power loss) and never removed it: the
  operating system released the ``flock`` when that process died, so the lock is provably free (on this host or
  any host sharing the folder over NFS); it is **reported** (a warning naming the dead owner's pid and start) and
  then taken, never silently. A killed run is thus resumable with ``--resume`` as before.

The ``flock`` (not the file's existence) is the lock, so there is no window in which two processes both believe
they own the run: after locking, the owner checks that ``run.lock`` is still the file it locked.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from radclr.errors import OutputError, RadclrError

try:
    import fcntl
except ImportError:  # pragma: no cover -- not on Windows: the file's existence is the lock there
    fcntl = None

__all__ = ["LOCK_NAME", "RunLocked", "run_lock", "lock_owner", "check_not_locked"]

LOCK_NAME = "run.lock"
log = logging.getLogger("radclr.runs")


class RunLocked(RadclrError):
    """The run directory is owned by another process."""


def _record(text: str) -> dict:
    try:
        owner = json.loads(text)
        owner["pid"] = int(owner["pid"])
        return owner
    except (ValueError, KeyError, TypeError):
        return {"pid": None}


def _describe(owner: dict) -> str:
    pid = owner.get("pid")
    who = f"process {pid}" if pid is not None else "another process"
    if owner.get("host") and owner.get("host") != socket.gethostname():
        who += f" on host {owner['host']}"
    return who + (f" (since {owner['started']})" if owner.get("started") else "")


def _held(path: Path) -> bool | None:
    """Whether another open file description holds the lock on ``path`` (None: no such file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if fcntl is None:  # pragma: no cover
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def lock_owner(run_dir: str | Path) -> dict | None:
    """The record of the process that holds ``run_dir``'s lock (``pid``, ``host``, ``started``), or None when no
    process holds it (no lock file, or a stale one)."""
    path = Path(run_dir) / LOCK_NAME
    if not _held(path):
        return None
    try:
        return _record(path.read_text())
    except OSError:
        return {"pid": None}


def check_not_locked(run_dir: str | Path) -> None:
    """:class:`RunLocked` if another process owns ``run_dir`` (commands that write into a run: evaluate, report).
    The process that holds the lock itself (training, then evaluating) passes."""
    path = Path(run_dir) / LOCK_NAME
    try:
        if _record(path.read_text()).get("pid") == os.getpid():
            return
    except OSError:
        return
    owner = lock_owner(run_dir)
    if owner is not None:
        raise RunLocked(f"{Path(run_dir)} is in use by {_describe(owner)} ({path}); wait for it to finish")


def _open_locked(path: Path) -> tuple[int, str] | None:
    """``(fd, previous content)`` of ``path`` locked by this process, or None when another process holds it."""
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino  # not a file its previous owner just removed
        except FileNotFoundError:
            same = False
        if same:
            previous = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            return fd, previous
        os.close(fd)
    raise OutputError(path, "cannot take the run lock: the lock file keeps changing")  # pragma: no cover


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Own ``run_dir`` for the block (module docstring); the folder must exist."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    try:
        got = _open_locked(path)
    except OSError as e:
        from radclr.safe_write import describe

        raise OutputError(path, f"cannot create the run lock: {describe(e)}") from None
    if got is None:
        try:
            owner = _record(path.read_text())
        except OSError:
            owner = {"pid": None}
        raise RunLocked(f"{run_dir} is in use by {_describe(owner)} ({path}); wait for it to finish or choose "
                        f"another --out")
    fd, previous = got
    if previous.strip():
        log.warning("%s: stale lock of %s, which ended without releasing it (killed?); taking the run over",
                    path, _describe(_record(previous)))
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield path
    finally:
        try:
            path.unlink()  # still holding the lock: a process waiting on this file re-checks it and retries
        except OSError:
            pass
        os.close(fd)
