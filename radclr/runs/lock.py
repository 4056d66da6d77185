"""One process owns a run directory: ``RUN/run.lock`` holds the owner's pid while it trains.

Two ``radclr train`` into the same ``--out`` at once used to interleave their files (the config of one run next to
the checkpoints of the other). :func:`run_lock` creates ``run.lock`` atomically (``O_CREAT | O_EXCL``) with the
pid, host and start time of the owner, and removes it when the block ends (normally or by an error). A second
process finds the file and stops with one line naming the owner:

* owner alive (same host, pid running): "in use by process PID";
* owner gone (same host, pid not running -- a killed run): the lock is *stale*; it is reported with the command
  that removes it, never silently taken over (the pid could belong to a run on another machine sharing the folder,
  or the user may want to look first);
* another host: the pid cannot be checked here; reported as held by PID on HOST.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from radclr.errors import OutputError, RadclrError

__all__ = ["LOCK_NAME", "RunLocked", "run_lock", "lock_owner", "check_not_locked"]

LOCK_NAME = "run.lock"


class RunLocked(RadclrError):
    """The run directory is owned by another process (or a stale lock of a dead one is in the way)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def lock_owner(run_dir: str | Path) -> dict | None:
    """The lock's record (``pid``, ``host``, ``started``, ``alive``: True/False/None when on another host), or
    None when the run is not locked."""
    path = Path(run_dir) / LOCK_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        text = ""
    try:
        owner = json.loads(text)
        owner["pid"] = int(owner["pid"])
    except (ValueError, KeyError, TypeError):
        owner = {"pid": None, "host": None, "started": None}
    if owner.get("pid") is None:
        owner["alive"] = None
    elif owner.get("host") == socket.gethostname():
        owner["alive"] = _alive(owner["pid"])
    else:
        owner["alive"] = None
    return owner


def _refusal(run_dir: Path, owner: dict) -> str:
    lock = run_dir / LOCK_NAME
    since = f" since {owner['started']}" if owner.get("started") else ""
    if owner.get("alive") is True:
        return (f"{run_dir} is in use by process {owner['pid']}{since} ({lock}); wait for it to finish or choose "
                f"another --out")
    if owner.get("alive") is False:
        return (f"{lock}: stale lock of process {owner['pid']}{since}, which is no longer running (a killed run?); "
                f"if no other radclr uses {run_dir}, remove {lock} and try again")
    if owner.get("pid") is None:
        return f"{lock}: unreadable lock file; if no other radclr uses {run_dir}, remove it and try again"
    return (f"{run_dir} is locked by process {owner['pid']} on host {owner.get('host')}{since} ({lock}); if that "
            f"run has ended, remove the lock file and try again")


def check_not_locked(run_dir: str | Path) -> None:
    """:class:`RunLocked` if another process owns ``run_dir`` (for commands that write into a run: evaluate)."""
    owner = lock_owner(run_dir)
    if owner is not None and owner.get("pid") != os.getpid():
        raise RunLocked(_refusal(Path(run_dir), owner))


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Own ``run_dir`` for the block (module docstring); the folder must exist."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise RunLocked(_refusal(run_dir, lock_owner(run_dir) or {"pid": None})) from None
    except OSError as e:
        from radclr.outputs import describe

        raise OutputError(path, f"cannot create the run lock: {describe(e)}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record))
        yield path
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == record["pid"]:
                path.unlink()
        except (OSError, ValueError):
            pass
