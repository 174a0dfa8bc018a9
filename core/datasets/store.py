"""Saved datasets: split, save (`workspace.datasets/<id>/` train.jsonl, heldout.jsonl, meta.json, all atomic, and the
SQLite `datasets` table), list, load, delete. A dataset a training run used is never replaced."""
from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

from core.errors import StudioError
from core.settings import Workspace
from core.storage import atomic_write_json, atomic_write_text, connect, ensure_schema, read_json, transaction
from core.datasets.files import rows_to_jsonl, validate_rows
from core.datasets.rows import FORMATS, STYLE_RULES, make_row

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    format TEXT NOT NULL,
    style_rule TEXT,
    origin TEXT,
    train_rows INTEGER NOT NULL,
    heldout_rows INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
"""

DATASET_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    kind: str
    format: str
    style_rule: str | None
    origin: str
    train_rows: int
    heldout_rows: int
    seed: int
    created_at: str


# ---------------------------------------------------------------- split, save, load
def split_rows(rows: Sequence[dict], heldout_fraction: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Seeded shuffle then split; the same seed always gives the same split."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise StudioError("The held-out fraction must be at least 0 and below 1.")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_heldout = int(round(len(rows) * heldout_fraction))
    if heldout_fraction > 0 and len(rows) >= 2:
        n_heldout = max(1, min(n_heldout, len(rows) - 1))
    held = sorted(order[:n_heldout])
    train = sorted(order[n_heldout:])
    return [rows[i] for i in train], [rows[i] for i in held]


def validate_dataset_id(dataset_id: str) -> str:
    dataset_id = (dataset_id or "").strip()
    if not DATASET_ID_PATTERN.match(dataset_id):
        raise StudioError(f"Dataset id {dataset_id!r} is not allowed: use 1-64 letters, digits, dots, dashes or underscores.")
    return dataset_id


def _open(workspace: Workspace):
    conn = connect(workspace)
    ensure_schema(conn, SCHEMA)
    return conn


def _runs_using_dataset(conn: sqlite3.Connection, dataset_id: str) -> list[str]:
    """Ids of training runs that name this dataset (the runs table belongs to training; it may not exist yet)."""
    try:
        rows = conn.execute("SELECT id FROM runs WHERE dataset_id = ? ORDER BY created_at", (dataset_id,)).fetchall()
    except sqlite3.OperationalError:  # no run was ever started in this workspace
        return []
    return [row["id"] for row in rows]


def check_dataset_id(workspace: Workspace, dataset_id: str, replace: bool = False) -> str:
    """Refuse an id that would silently replace stored rows.

    An existing dataset is replaced only when the caller asks (`--replace`, the page's confirm step), and never
    when a training run used it: the run's adapter would then name rows it was not trained on.
    """
    with _open(workspace) as conn:
        return _check_dataset_id(conn, workspace, dataset_id, replace)


def _check_dataset_id(conn: sqlite3.Connection, workspace: Workspace, dataset_id: str, replace: bool) -> str:
    dataset_id = validate_dataset_id(dataset_id)
    row = conn.execute("SELECT train_rows, heldout_rows FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    folder = workspace.datasets / dataset_id
    if row is None and not folder.exists():
        return dataset_id
    runs = _runs_using_dataset(conn, dataset_id)
    if runs:
        raise StudioError(
            f"The dataset {dataset_id!r} was used by training run {runs[-1]}"
            + (f" and {len(runs) - 1} more" if len(runs) > 1 else "")
            + ", so it is never replaced. Save the new rows under another id."
        )
    if not replace:
        what = f"{row['train_rows']} train + {row['heldout_rows']} held-out rows" if row is not None else "a folder on disk"
        raise StudioError(
            f"A dataset named {dataset_id!r} already exists ({what}). Choose another id, "
            "or replace it on purpose (--replace on the command line, 'Replace' on the Training data page)."
        )
    return dataset_id


def dataset_content_hash(workspace: Workspace, dataset_id: str) -> str:
    """SHA-256 of the stored train and held-out files: what a run records to name exactly the rows it used."""
    digest = hashlib.sha256()
    for split in ("train", "heldout"):
        path = workspace.datasets / dataset_id / f"{split}.jsonl"
        digest.update(split.encode() + b"\0")
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def save_dataset(
    workspace: Workspace,
    dataset_id: str,
    rows: Sequence[dict],
    kind: str = "imported",
    fmt: str = "instruction",
    heldout_fraction: float = 0.2,
    seed: int = 0,
    style_rule: str | None = None,
    origin: str = "",
    extra_meta: dict | None = None,
    replace: bool = False,
) -> DatasetInfo:
    """Split and save rows (train.jsonl, heldout.jsonl, meta.json) and register them in SQLite.

    An existing id is refused unless `replace` is set, and a dataset a run trained on is never replaced.
    """
    dataset_id = validate_dataset_id(dataset_id)
    if fmt not in FORMATS:
        raise StudioError(f"Unknown format {fmt!r}; choose {' or '.join(FORMATS)}.")
    if style_rule is not None and style_rule not in STYLE_RULES:
        raise StudioError(f"Unknown style rule {style_rule!r}; known: {', '.join(STYLE_RULES)}.")
    report = validate_rows(enumerate(rows, start=1), max_length=10**9)
    if report.errors:
        line, message = report.errors[0]
        raise StudioError(f"Row {line}: {message}. Fix the rows before saving ({len(report.errors)} problems).")
    if not report.rows:
        raise StudioError("The dataset is empty; build or upload rows first.")
    clean = [make_row(r["instruction"], r["input"], r["output"], r["source"]) for r in report.rows]
    train, heldout = split_rows(clean, heldout_fraction, seed)
    folder = workspace.datasets / dataset_id
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    train_text, heldout_text = rows_to_jsonl(train), rows_to_jsonl(heldout)
    meta = {
        "id": dataset_id, "kind": kind, "format": fmt, "style_rule": style_rule, "origin": origin,
        "train_rows": len(train), "heldout_rows": len(heldout), "seed": seed, "heldout_fraction": heldout_fraction,
        "duplicates_removed": report.duplicates, "created_at": created, **(extra_meta or {}),
    }
    with _open(workspace) as conn, transaction(conn):
        # The check runs under the write lock (BEGIN IMMEDIATE), so two saves of one id cannot both pass it.
        _check_dataset_id(conn, workspace, dataset_id, replace)
        atomic_write_text(folder / "train.jsonl", train_text)
        atomic_write_text(folder / "heldout.jsonl", heldout_text)
        meta["content_sha256"] = dataset_content_hash(workspace, dataset_id)
        atomic_write_json(folder / "meta.json", meta)
        conn.execute(
            """INSERT OR REPLACE INTO datasets (id, kind, format, style_rule, origin, train_rows, heldout_rows, seed, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (dataset_id, kind, fmt, style_rule, origin, len(train), len(heldout), seed, created),
        )
    log.info("Saved dataset %s: %d train, %d held-out rows", dataset_id, len(train), len(heldout))
    return get_dataset(workspace, dataset_id)


def list_datasets(workspace: Workspace) -> list[DatasetInfo]:
    with _open(workspace) as conn:
        rows = conn.execute("SELECT * FROM datasets ORDER BY created_at DESC, id").fetchall()
    return [DatasetInfo(**{k: row[k] for k in row.keys()}) for row in rows]


def get_dataset(workspace: Workspace, dataset_id: str) -> DatasetInfo:
    with _open(workspace) as conn:
        row = conn.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    if row is None:
        known = ", ".join(d.id for d in list_datasets(workspace)) or "none yet"
        raise StudioError(f"No dataset named {dataset_id!r} (known: {known}). Build or import one on the Training data page.")
    return DatasetInfo(**{k: row[k] for k in row.keys()})


def dataset_meta(workspace: Workspace, dataset_id: str) -> dict:
    get_dataset(workspace, dataset_id)
    return read_json(workspace.datasets / dataset_id / "meta.json", {}) or {}


def load_dataset_rows(workspace: Workspace, dataset_id: str, split: str = "train") -> list[dict]:
    """Rows of one split ("train" or "heldout"), each with instruction/input/output/prompt/completion/source."""
    if split not in ("train", "heldout"):
        raise StudioError(f"Unknown split {split!r}; use 'train' or 'heldout'.")
    get_dataset(workspace, dataset_id)
    path = workspace.datasets / dataset_id / f"{split}.jsonl"
    if not path.exists():
        raise StudioError(f"The dataset {dataset_id!r} has no {split} file; save it again from the Training data page.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def delete_dataset(workspace: Workspace, dataset_id: str) -> None:
    get_dataset(workspace, dataset_id)
    with _open(workspace) as conn, transaction(conn):
        conn.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
    shutil.rmtree(workspace.datasets / dataset_id, ignore_errors=True)
