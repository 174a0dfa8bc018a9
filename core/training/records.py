"""What is known about runs: the `runs` table, each run's folder (progress, log, checkpoints, adapter), the run lock.

A run marked active whose process is gone is recorded as failed the next time it is read (`_reconcile`).
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import StudioError
from core.jobs import utc_now  # the one timestamp format of the workspace's records
from core.settings import Workspace
from core.storage import connect, ensure_schema, read_json, transaction

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    base_model TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    final_loss REAL,
    started_at TEXT,
    finished_at TEXT,
    duration_s REAL,
    adapter_size INTEGER,
    error TEXT,
    created_at TEXT NOT NULL
);
"""

STATUSES = ("queued", "running", "cancelled", "failed", "completed")
ACTIVE = ("queued", "running")
LOCK_NAME = ".run.lock"


@dataclass(frozen=True)
class RunInfo:
    id: str
    dataset_id: str
    base_model: str
    config: dict
    status: str
    pid: int | None
    final_loss: float | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    adapter_size: int | None
    error: str | None
    created_at: str


def open_runs_db(workspace: Workspace):
    conn = connect(workspace)
    ensure_schema(conn, SCHEMA)
    return conn


def run_dir(workspace: Workspace, run_id: str) -> Path:
    return workspace.runs / run_id


def _row_to_run(row) -> RunInfo:
    data = {k: row[k] for k in row.keys()}
    data["config"] = json.loads(data["config"] or "{}")
    return RunInfo(**data)


def update_run(workspace: Workspace, run_id: str, **values: Any) -> None:
    if not values:
        return
    names = ", ".join(f"{k} = ?" for k in values)
    with open_runs_db(workspace) as conn, transaction(conn):
        conn.execute(f"UPDATE runs SET {names} WHERE id = ?", (*values.values(), run_id))


def pid_alive(pid: int | None) -> bool:
    """True while a training worker with this pid runs (zombies and reused pids count as dead)."""
    if not pid or pid <= 0:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own finished child so it does not linger as a zombie
    except (ChildProcessError, OSError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def _log_tail(workspace: Workspace, run_id: str, lines: int = 20) -> list[str]:
    path = run_dir(workspace, run_id) / "train.log"
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 20000))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def _reconcile(workspace: Workspace, run: RunInfo) -> RunInfo:
    """A run marked active whose process is gone crashed (killed, OOM): record it as failed, keep checkpoints."""
    if run.status not in ACTIVE or pid_alive(run.pid):
        return run
    if run.status == "queued" and run.pid is None:
        return run
    tail = [line for line in _log_tail(workspace, run.id) if line.strip()]
    last = tail[-1] if tail else "no log output"
    error = (
        f"The training process (pid {run.pid}) ended without finishing: killed, crashed or out of memory. "
        f"Last log line: {last[:300]}. Checkpoints are kept; resume the run to continue."
    )
    update_run(workspace, run.id, status="failed", error=error, finished_at=utc_now(), pid=None)
    release_lock(workspace, run.pid)
    log.warning("Run %s: %s", run.id, error)
    return replace(run, status="failed", error=error, pid=None)


def list_runs(workspace: Workspace) -> list[RunInfo]:
    with open_runs_db(workspace) as conn:
        rows = conn.execute("SELECT * FROM runs ORDER BY created_at DESC, id DESC").fetchall()
    return [_reconcile(workspace, _row_to_run(row)) for row in rows]


def get_run(workspace: Workspace, run_id: str) -> RunInfo:
    with open_runs_db(workspace) as conn:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise StudioError(f"No run named {run_id!r}; `python -m core runs list` shows the runs.")
    return _reconcile(workspace, _row_to_run(row))


def active_run(workspace: Workspace) -> RunInfo | None:
    return next((run for run in list_runs(workspace) if run.status in ACTIVE), None)


def read_progress(workspace: Workspace, run_id: str) -> list[dict]:
    """Every event the worker wrote (event = start | step | end), oldest first; a torn last line is skipped."""
    path = run_dir(workspace, run_id) / "progress.jsonl"
    events = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def read_log(workspace: Workspace, run_id: str, lines: int = 30) -> str:
    return "\n".join(_log_tail(workspace, run_id, lines))


def last_checkpoint(workspace: Workspace, run_id: str) -> Path | None:
    """The newest complete checkpoint (trainer_state.json is written last, so a torn one is skipped)."""
    folder = run_dir(workspace, run_id) / "checkpoints"
    found = []
    for path in folder.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and (path / "trainer_state.json").exists():
            found.append((int(match[1]), path))
    return max(found)[1] if found else None


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------- one run at a time
def lock_path(workspace: Workspace) -> Path:
    return workspace.runs / LOCK_NAME


def read_lock(workspace: Workspace) -> dict | None:
    return read_json(lock_path(workspace), None)


def acquire_lock(workspace: Workspace, run_id: str, pid: int) -> None:
    """Create the lock atomically; a lock whose pid is dead is stale and is cleared."""
    path = lock_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_lock(workspace) or {}
            if pid_alive(held.get("pid")):
                raise StudioError(
                    f"Run {held.get('run_id')!r} is already training (pid {held.get('pid')}); one run at a time per workspace. "
                    "Wait for it to finish or cancel it."
                )
            log.warning("Clearing a stale run lock left by pid %s", held.get("pid"))
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump({"run_id": run_id, "pid": pid}, handle)
        return
    raise StudioError("Could not take the run lock; try again.")


def release_lock(workspace: Workspace, pid: int | None = None) -> None:
    held = read_lock(workspace)
    if held is not None and (pid is None or held.get("pid") == pid):
        lock_path(workspace).unlink(missing_ok=True)
