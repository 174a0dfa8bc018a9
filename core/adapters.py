"""Find LoRA adapters in the workspace: `runs/<run_id>/adapter/adapter_config.json`, and their human names.

Works before and after core.training lands (it only scans the folders a training run writes).
An adapter's name ("squad-style · demo · 2 Dec 14:04": dataset, preset, date) is made from the run's
config.json until someone renames it; a new name is kept with the run, in `runs/<run_id>/name.json`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import StudioError
from core.settings import Workspace
from core.storage import atomic_write_json, read_json

NAME_FILE = "name.json"
MAX_NAME = 80


@dataclass(frozen=True)
class AdapterInfo:
    run_id: str
    path: Path
    base_model: str
    rank: int | None
    target_modules: tuple[str, ...]
    modified: str
    name: str = ""

    @property
    def label(self) -> str:
        """What every list of adapters shows: the human name (the run id stays in `run_id`)."""
        return self.name or self.run_id


def _info(run_id: str, folder: Path, workspace: Workspace) -> AdapterInfo | None:
    config_file = folder / "adapter_config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    targets = config.get("target_modules") or ()
    targets = (targets,) if isinstance(targets, str) else tuple(sorted(targets))
    modified = datetime.fromtimestamp(config_file.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    return AdapterInfo(run_id, folder, str(config.get("base_model_name_or_path") or ""), config.get("r"), targets, modified,
                       adapter_name(workspace, run_id))


def find_adapters(workspace: Workspace) -> list[AdapterInfo]:
    """Every adapter folder under runs/, newest first."""
    found = []
    if workspace.runs.is_dir():
        for config_file in workspace.runs.glob("*/adapter/adapter_config.json"):
            info = _info(config_file.parent.parent.name, config_file.parent, workspace)
            if info is not None:
                found.append(info)
    return sorted(found, key=lambda info: info.modified, reverse=True)


def resolve_adapter(workspace: Workspace, path_or_run_id: str) -> Path:
    """A folder path, or a run id in this workspace, to the adapter folder."""
    value = (path_or_run_id or "").strip()
    if not value:
        raise StudioError("No adapter given; pass a run id or an adapter folder.")
    candidate = Path(value).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    run_folder = workspace.runs / value / "adapter"
    if run_folder.is_dir():
        return run_folder.resolve()
    known = ", ".join(info.run_id for info in find_adapters(workspace)) or "none yet (train one on the Fine-tune page)"
    raise StudioError(f"No adapter {value!r}: it is neither a folder nor a run id in this workspace. Known runs: {known}.")


# ---------------------------------------------------------------- human names
def _preset_of(config: dict) -> str:
    """The training preset a run used ("demo", "quality"), or "custom" when its settings match none."""
    if config.get("preset"):
        return str(config["preset"])
    try:
        from core.training import PRESETS
    except ImportError:  # pragma: no cover
        return "custom"
    lora, training = config.get("lora") or {}, config.get("training") or {}
    for name, (preset_lora, preset_training) in PRESETS.items():
        if (lora.get("r") == preset_lora.r and training.get("learning_rate") == preset_training.learning_rate
                and training.get("max_steps") == preset_training.max_steps and training.get("batch_size") == preset_training.batch_size):
            return name
    return "custom"


def default_adapter_name(workspace: Workspace, run_id: str) -> str:
    """dataset · preset · date, from the run's config.json (the run id when the config is unreadable)."""
    config = read_json(workspace.runs / run_id / "config.json", default={}) or {}
    if not config:
        return run_id
    created = str(config.get("created_at") or "")
    try:
        when = datetime.fromisoformat(created).strftime("%-d %b %H:%M")
    except ValueError:
        when = created[:16]
    parts = [str(config.get("dataset_id") or "?"), _preset_of(config), when]
    return " · ".join(part for part in parts if part)


def adapter_name(workspace: Workspace, run_id: str) -> str:
    stored = read_json(workspace.runs / run_id / NAME_FILE, default={}) or {}
    name = stored.get("name") if isinstance(stored, dict) else None
    return name if isinstance(name, str) and name.strip() else default_adapter_name(workspace, run_id)


def rename_adapter(workspace: Workspace, run_id: str, name: str) -> str:
    """Give a run's adapter a human name (kept with the run); an empty name goes back to dataset · preset · date."""
    folder = workspace.runs / run_id
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", run_id or "") or not folder.is_dir():
        raise StudioError(f"No run {run_id!r} in this workspace; `python -m core runs list` shows the runs.")
    cleaned = " ".join((name or "").split())
    if len(cleaned) > MAX_NAME:
        raise StudioError(f"An adapter name has at most {MAX_NAME} characters; this one has {len(cleaned)}. Shorten it.")
    if any(ord(ch) < 32 for ch in cleaned):
        raise StudioError("An adapter name cannot hold control characters; use letters, digits and punctuation.")
    atomic_write_json(folder / NAME_FILE, {"name": cleaned})
    return adapter_name(workspace, run_id)
