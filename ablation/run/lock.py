"""One writer per output folder: a lock file taken before anything is written, refused while its holder lives.

`OUT/.lock` is created with `O_CREAT | O_EXCL` (atomic on local disks and on NFS v3+), holds the holder's host, pid,
process start time and a random token, and is touched every `HEARTBEAT_S` seconds while the run lives. A second run
into the folder is refused at once, naming the holder. A lock left by a killed run is stale and taken over, so a
`--resume` after a crash is never blocked: on the same host when its pid is gone (or now names another process,
told apart by its start time); from another host (shared storage) when its heartbeat is older than `STALE_AFTER_S`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from .context import StartError

LOCK_FILE = ".lock"
HEARTBEAT_S = 15.0
STALE_AFTER_S = 120.0  # 8 missed heartbeats: a holder on another host is taken for dead


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None where unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # the fields after the command name, which may hold spaces


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a process of another user: it exists
    return started is None or _process_start(pid) in (None, started)


def _read(path: Path) -> dict | None:
    """The holder's record; None when the file is gone or not (yet) a whole record."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"host", "pid", "token"} <= record.keys() else None


def _stale(path: Path, record: dict | None) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if record is None:  # half-written by a holder killed while taking it, or being written right now
        return age > STALE_AFTER_S
    if record["host"] == socket.gethostname():
        return not _alive(int(record["pid"]), record.get("pid_start"))
    return age > STALE_AFTER_S


def _describe(out: Path, record: dict | None) -> str:
    if record is None:
        return f"{out}: another run is taking this output folder right now; write elsewhere with --out"
    return (
        f"{out}: another run is writing this output folder (host {record['host']}, pid {record['pid']}, since "
        f"{record.get('since', '?')}); wait for it to end, or write elsewhere with --out"
    )


@contextlib.contextmanager
def hold_output(out: Path) -> Iterator[Path]:
    """Hold `out`'s lock for the duration of the block (creating the folder); `StartError` when a live run holds
    it. The lock is released on leaving the block, also on an exception (a folder this made and nothing filled is
    removed again, so a run refused later leaves nothing behind); a killed holder's lock goes stale."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StartError(f"--out {out}: is a file, not a folder")
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    token = _take(out, path)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, stop), name="output-lock", daemon=True)
    beat.start()
    try:
        yield path
    finally:
        stop.set()
        beat.join()
        record = _read(path)
        if record is not None and record["token"] == token:
            path.unlink(missing_ok=True)
        if made:
            with contextlib.suppress(OSError):  # not empty: it holds what the run wrote
                out.rmdir()


def _take(out: Path, path: Path) -> str:
    token = secrets.token_hex(8)
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": _process_start(os.getpid()),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "token": token,
    }
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if not _stale(path, holder):
                raise StartError(_describe(out, holder)) from None
            _break(path, holder)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        return token
    raise StartError(_describe(out, _read(path)))


def _break(path: Path, holder: dict | None) -> None:
    """Remove a stale lock. It is first renamed aside (atomic), so that of two runs breaking it at once only one
    removes it; should the file renamed be a fresh lock another run took meanwhile, it is put back."""
    aside = path.with_name(f"{LOCK_FILE}.stale-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    taken = _read(aside)
    if taken is not None and (holder is None or taken["token"] != holder["token"]):
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)  # a live lock: restore it (fails only if yet another run holds the path)
    aside.unlink(missing_ok=True)


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):
            os.utime(path)
