"""SQLite catalogue and atomic file writes shared by every stage.

Each feature module creates its own tables with `ensure_schema(conn, SQL)`, so modules stay
independent. Never unpickle anything from disk: data goes to SQLite, JSON or safetensors.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from core.errors import StudioError
from core.settings import Workspace

log = logging.getLogger(__name__)

BACKUPS_KEPT = 3  # rolling backups of studio.db in workspace/backups/ (one per successful ingest or run)
_CHECKED: set[tuple[str, int, int]] = set()  # catalogues that passed quick_check in this process
_CHECK_LOCK = threading.Lock()


class CatalogueError(StudioError):
    """studio.db is damaged or empty; the message names the file and the last good backup."""


def connect(workspace: Workspace) -> sqlite3.Connection:
    """A connection with foreign keys on and rows addressable by column name.

    The catalogue is checked (`PRAGMA quick_check`) the first time a process opens it, so a damaged
    file gives one CatalogueError naming the file and its last good backup, never a raw sqlite3 error.
    """
    check_catalogue(workspace)
    try:
        conn = sqlite3.connect(workspace.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        _use_wal(conn)
    except sqlite3.DatabaseError as error:
        if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            raise
        raise _damaged(workspace, str(error)) from error
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """WAL, so readers (the UI) never block the writer (a run). Switching a new file to WAL takes an exclusive lock
    that SQLite's busy timeout does not wait for: two first connections at once got "database is locked" (two
    racing ingests into a new workspace), so the switch is retried briefly, and skipped once the file is WAL."""
    for attempt in range(100):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == 99:
                raise
            time.sleep(0.05)


# ---------------------------------------------------------------- catalogue health and backups
def backups_folder(workspace: Workspace) -> Path:
    return workspace.root / "backups"


def list_backups(workspace: Workspace) -> list[Path]:
    """Backups of studio.db, newest first (their names sort by time)."""
    return sorted(backups_folder(workspace).glob("studio-*.db"), reverse=True)


def _index_folders(workspace: Workspace) -> list[Path]:
    return [path for path in workspace.indexes.glob("*") if path.is_dir() and path.name.isdigit()]


def _damaged(workspace: Workspace, why: str) -> CatalogueError:
    backups = list_backups(workspace)
    if backups:
        remedy = (f"The last good backup is {backups[0]}. Restore it with `python -m core kb restore-backup` "
                  "(the damaged file is kept beside it as studio.db.damaged-<time>).")
    else:
        remedy = ("There is no backup yet. Move the file aside to start a new catalogue; the index folders on disk "
                  "are kept and their ids are never reused.")
    return CatalogueError(f"The catalogue {workspace.db_path} is damaged ({why}). {remedy}")


def check_catalogue(workspace: Workspace, force: bool = False) -> None:
    """Raise CatalogueError if studio.db is malformed, or empty while the workspace shows it held data.

    quick_check runs once per file per process (it reads every page: ~1 s per GB); an empty file
    is checked on every call because it costs one stat().
    """
    path = workspace.db_path
    try:
        stat = path.stat()
    except FileNotFoundError:
        return  # a new workspace: SQLite creates the file
    if stat.st_size == 0:
        folders = _index_folders(workspace)
        if folders or list_backups(workspace):
            raise _damaged(workspace, f"it is empty (0 bytes) while the workspace holds {len(folders)} index folder(s)")
        return
    key = (str(path), stat.st_ino, stat.st_dev)
    with _CHECK_LOCK:
        if key in _CHECKED and not force:
            return
    try:
        conn = sqlite3.connect(path, timeout=30)
        try:
            rows = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.OperationalError as error:
        if "locked" in str(error):
            return  # a writer holds it: not damage; the next open checks again
        raise _damaged(workspace, str(error)) from error
    except sqlite3.DatabaseError as error:
        raise _damaged(workspace, str(error)) from error
    if rows != ["ok"]:
        raise _damaged(workspace, "; ".join(rows[:3]))
    with _CHECK_LOCK:
        _CHECKED.add(key)


def backup_catalogue(workspace: Workspace, keep: int = BACKUPS_KEPT) -> Path | None:
    """Copy studio.db into backups/ with SQLite's online backup API (consistent even while others write).

    The copy is checked, then renamed into place; only the newest `keep` copies stay. Returns the new
    backup, or None when there is nothing to back up. A failed backup is logged, never raised: the
    ingest or run it follows has already succeeded.
    """
    if not workspace.db_path.exists() or workspace.db_path.stat().st_size == 0:
        return None
    folder = backups_folder(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"studio-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}.db"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".studio-", suffix=".tmp")
    os.close(fd)
    started = time.perf_counter()
    try:
        source = sqlite3.connect(workspace.db_path, timeout=30)
        copy = sqlite3.connect(tmp)
        try:
            source.backup(copy)
            if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("the copy failed its quick_check")
        finally:
            copy.close()
            source.close()
        os.replace(tmp, target)
    except (sqlite3.Error, OSError) as error:
        Path(tmp).unlink(missing_ok=True)
        log.warning("Backup of %s failed: %s", workspace.db_path, error)
        return None
    for old in list_backups(workspace)[keep:]:
        old.unlink(missing_ok=True)
    log.info("Backed up %s to %s in %.2f s", workspace.db_path, target, time.perf_counter() - started)
    return target


def restore_catalogue(workspace: Workspace, backup: Path | None = None) -> Path:
    """Put the newest (or the given) backup in place of studio.db; the replaced file is kept beside it."""
    backups = list_backups(workspace)
    backup = backup or (backups[0] if backups else None)
    if backup is None or not backup.exists():
        raise StudioError(f"No backup of the catalogue in {backups_folder(workspace)}; nothing to restore.")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        current = Path(f"{workspace.db_path}{suffix}")
        if current.exists():
            os.replace(current, Path(f"{workspace.db_path}.damaged-{stamp}{suffix}"))
    fd, tmp = tempfile.mkstemp(dir=workspace.root, prefix=".studio-restore-", suffix=".tmp")
    os.close(fd)
    source, copy = sqlite3.connect(backup), sqlite3.connect(tmp)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    os.replace(tmp, workspace.db_path)
    # The FAISS and tantivy indexes may describe a later state under the same catalogue version (changes made after the
    # backup): their stamps go, so each is checked against the restored rows, and rebuilt if it differs, on next use.
    for folder in _index_folders(workspace):
        for stamp in (folder / "manifest.json", folder / "lexical" / "stamp.json"):
            stamp.unlink(missing_ok=True)
    with _CHECK_LOCK:
        _CHECKED.clear()
    log.warning("Restored %s from %s", workspace.db_path, backup)
    return backup


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: all or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def ensure_schema(conn: sqlite3.Connection, sql: str) -> None:
    conn.executescript(sql)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False, default=str))


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def read_json_or_default(path: Path, default: Any = None) -> Any:
    """Like read_json, but a torn or unreadable file (a crash mid-write on a filesystem without atomic
    rename, a disk error) counts as missing: callers rebuild what it described."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (ValueError, OSError) as error:
        log.warning("%s is unreadable (%s); treating it as missing", path, error)
        return default


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON-lines file written as it runs (results, progress, judge cells); a missing file is
    empty, and a line cut short by a crash (or anything not an object) is skipped."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (made if missing) across processes and threads, until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_folder_once(target: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """Build the folder `target` once across processes (the app, the CLI, a training run, tests).

    Done when `target/marker` exists. A file lock next to it lets one process build while the others wait;
    the build fills a staging folder that is renamed into place, so a crash never leaves half a folder.
    """
    if (target / marker).exists():
        return target
    with exclusive_lock(target.parent / f".{target.name}.lock"):
        if (target / marker).exists():
            return target
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            build(staging)
            staging.chmod(0o755)  # mkdtemp made it private; these folders are shared read-only caches
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target
