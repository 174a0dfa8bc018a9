"""Run control: start (check, record, spawn the worker), cancel, resume, wait, delete.

A run is a separate process (`python -m core.training.worker RUN_DIR`) so the UI stays responsive, a
crash cannot take the app down and a reloaded tab reconnects: everything the UI shows comes from
`runs/<id>/` (config.json, progress.jsonl, train.log, checkpoints/, adapter/) and the `runs` table.
Cancel = a STOP file the worker's TrainerCallback checks after every optimizer step; it saves a
checkpoint and ends. Resume = the same run id continues from its last checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Callable

from core.errors import StudioError
from core.jobs import utc_now
from core.settings import Workspace
from core.storage import atomic_write_json, atomic_write_text, read_json, transaction
from core.training.facts import model_facts, resolve_lora
from core.training.hparams import LoraSettings, TrainingSettings, settings_from_dict
from core.training.plan import plan_run
from core.training.records import (
    ACTIVE, RunInfo, acquire_lock, lock_path, open_runs_db, get_run, last_checkpoint, read_progress, release_lock, run_dir, update_run,
)

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]  # where `python -m core.training.worker` finds the `core` package


def new_run_id() -> str:
    return datetime.now().strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def process_count(training: TrainingSettings) -> int:
    """Training processes: as asked, else one per visible GPU (1 without CUDA)."""
    if training.processes > 0:
        return training.processes
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except ImportError:  # pragma: no cover
        return 1


def worker_command(folder: Path, processes: int) -> list[str]:
    """One process runs the worker directly; several run it under `accelerate launch` (DDP, gloo on CPU, NCCL on GPUs).

    accelerate's --multi_gpu launcher is torch.distributed.run in-process, so the launcher is the ranks' parent
    (each rank dies with it: core.training.worker.die_with_launcher). On CPU the Trainer's use_cpu makes it gloo.
    """
    if processes <= 1:
        return [sys.executable, "-m", "core.training.worker", str(folder)]
    import socket

    with socket.socket() as probe:  # a free rendezvous port, so two workspaces can train at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
        "--module", "core.training.worker", str(folder),
    ]


_WORKER_SPAWNERS: list[Callable[[Workspace, str], int]] = []


def register_worker_spawner(spawn: Callable[[Workspace, str], int] | None) -> None:
    """Start workers with `spawn(workspace, run_id) -> pid` instead of a process (None: the real one again).

    The seam page tests enter through: start_run and resume_run still check, plan and record everything; only the
    worker process is a stand-in, which then writes progress as the real one would (or nothing: the run stays queued).
    """
    _WORKER_SPAWNERS[:] = [spawn] if spawn else []


def _spawn(workspace: Workspace, run_id: str) -> int:
    if _WORKER_SPAWNERS:
        return _WORKER_SPAWNERS[0](workspace, run_id)
    folder = run_dir(workspace, run_id)
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["STUDIO_WORKSPACE"] = str(workspace.root)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    _, training = settings_from_dict(read_json(folder / "config.json", {}))
    with open(folder / "train.log", "ab") as log_file:
        process = subprocess.Popen(
            worker_command(folder, process_count(training)),
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=str(REPO_ROOT), start_new_session=True,
        )
    return process.pid


def start_run(
    workspace: Workspace, dataset_id: str, lora: LoraSettings, training: TrainingSettings, run_id: str | None = None
) -> RunInfo:
    """Check everything, then launch the worker process; returns at once with the run record."""
    facts = model_facts(workspace, training.base_model)
    lora = resolve_lora(lora, facts)
    plan = plan_run(workspace, dataset_id, lora, training, facts=facts)
    run_id = new_run_id() if run_id is None else run_id.strip()  # "" is refused below, never silently replaced
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", run_id):
        raise StudioError(f"Run id {run_id!r} is not allowed: use letters, digits, dots, dashes or underscores.")
    acquire_lock(workspace, run_id, os.getpid())
    try:
        folder = run_dir(workspace, run_id)
        if folder.exists():
            raise StudioError(f"A run named {run_id!r} already exists.")
        (folder / "checkpoints").mkdir(parents=True)
        from core.datasets.store import dataset_content_hash

        config = {
            # The dataset's content hash names exactly the rows this run trained on (a used dataset is never replaced).
            "run_id": run_id, "dataset_id": dataset_id, "dataset_sha256": dataset_content_hash(workspace, dataset_id),
            "workspace": str(workspace.root),
            "lora": asdict(lora), "training": asdict(training), "plan": asdict(plan), "created_at": utc_now(),
            # which base this adapter belongs to: loading it on another base fails with both names (core/families.py)
            "base": {"model": training.base_model, "path": facts.path, "model_type": facts.model_type, "family": facts.family,
                     "config_hash": facts.config_hash},
        }
        atomic_write_json(folder / "config.json", config)
        with open_runs_db(workspace) as conn, transaction(conn):
            conn.execute(
                "INSERT INTO runs (id, dataset_id, base_model, config, status, created_at) VALUES (?, ?, ?, ?, 'queued', ?)",
                (run_id, dataset_id, training.base_model, json.dumps(config), utc_now()),
            )
    except BaseException:
        release_lock(workspace, os.getpid())
        raise
    pid = _launch_worker(workspace, run_id)
    log.info("Started run %s (pid %s): %d steps", run_id, pid, plan.total_steps)
    return get_run(workspace, run_id)


def cancel_run(workspace: Workspace, run_id: str) -> RunInfo:
    """Ask the worker to stop after the current step; it saves a checkpoint and records 'cancelled'."""
    run = get_run(workspace, run_id)
    if run.status not in ACTIVE:
        raise StudioError(f"Run {run_id!r} is not running (status {run.status}).")
    atomic_write_text(run_dir(workspace, run_id) / "STOP", utc_now())
    return run


def _launch_worker(workspace: Workspace, run_id: str) -> int:
    """Spawn the worker for a run whose lock this process holds; hand the lock to the worker's pid."""
    try:
        pid = _spawn(workspace, run_id)
    except BaseException:
        release_lock(workspace, os.getpid())
        raise
    atomic_write_json(lock_path(workspace), {"run_id": run_id, "pid": pid})
    update_run(workspace, run_id, pid=pid)
    return pid


def resume_run(workspace: Workspace, run_id: str) -> RunInfo:
    """Continue a cancelled or failed run from its last checkpoint, in a new worker process."""
    run = get_run(workspace, run_id)
    if run.status in ACTIVE:
        raise StudioError(f"Run {run_id!r} is still {run.status}; cancel it before resuming.")
    if run.status == "completed":
        raise StudioError(f"Run {run_id!r} already completed; start a new run to train more.")
    checkpoint = last_checkpoint(workspace, run_id)
    acquire_lock(workspace, run_id, os.getpid())
    try:
        (run_dir(workspace, run_id) / "STOP").unlink(missing_ok=True)
        update_run(workspace, run_id, status="queued", error=None, finished_at=None)
    except BaseException:
        release_lock(workspace, os.getpid())
        raise
    pid = _launch_worker(workspace, run_id)
    log.info("Resumed run %s from %s (pid %s)", run_id, checkpoint or "the start", pid)
    return get_run(workspace, run_id)


def wait_for_run(workspace: Workspace, run_id: str, timeout: float = 3600, poll: float = 1.0, on_event=None) -> RunInfo:
    """Block until the run leaves queued/running (for the CLI and tests); `on_event` sees new progress events."""
    seen = 0
    deadline = time.monotonic() + timeout
    while True:
        events = read_progress(workspace, run_id)
        if on_event:
            for event in events[seen:]:
                on_event(event)
        seen = len(events)
        run = get_run(workspace, run_id)
        if run.status not in ACTIVE:
            if on_event:
                for event in read_progress(workspace, run_id)[seen:]:
                    on_event(event)
            return run
        if time.monotonic() > deadline:
            raise StudioError(f"Run {run_id!r} did not finish within {timeout:.0f} s.")
        time.sleep(poll)


def delete_run(workspace: Workspace, run_id: str) -> None:
    run = get_run(workspace, run_id)
    if run.status in ACTIVE:
        raise StudioError(f"Run {run_id!r} is {run.status}; cancel it before deleting.")
    with open_runs_db(workspace) as conn, transaction(conn):
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    shutil.rmtree(run_dir(workspace, run_id), ignore_errors=True)
