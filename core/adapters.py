"""The one home of LoRA adapter listing and lookup, and of adapters' human names.

An adapter is `runs/<run_id>/adapter/` (adapter_config.json + weights), written by the training worker.
Every page, the CLI and the exports ask here, so they all offer the same adapters:
`find_adapters` lists them, `adapter_path` gives a run's folder, `resolve_adapter` accepts a run id or a folder.
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
from core.training.hparams import EARLIER_PRESETS, PRESETS
from core.training.records import RunInfo, get_run, list_runs, run_dir

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


def offers_adapter(run: RunInfo) -> bool:
    """The one rule for which runs' adapters are offered: a run that completed.

    The worker saves the adapter as the run's last step and only then records 'completed' (with the final loss and
    the adapter's size). A failed run's folder is an adapter nobody saw finish: killed or crashed during or after the
    save (half-written weights, or weights the record and the loss curve do not describe), and a cancelled run saves
    none. Compare used to list every folder on disk (failed runs too) and Fine-tune only completed runs.
    """
    return run.status == "completed"


def find_adapters(workspace: Workspace) -> list[AdapterInfo]:
    """The adapters every page offers: completed runs with a readable adapter folder, newest run first."""
    found = []
    for run in list_runs(workspace):
        if offers_adapter(run):
            info = _info(run.id, run_dir(workspace, run.id) / "adapter", workspace)
            if info is not None:
                found.append(info)
    return found


def adapter_path(workspace: Workspace, run_id: str) -> Path:
    """A run's adapter folder (adapter_config.json + adapter_model.safetensors), when the run offers one."""
    run = get_run(workspace, run_id)
    path = run_dir(workspace, run_id) / "adapter"
    if not offers_adapter(run) or not (path / "adapter_config.json").exists():
        raise StudioError(f"Run {run_id!r} has no adapter to use (status {run.status}); only a completed run's adapter is. "
                          "Finish or resume it first.")
    return path


def resolve_adapter(workspace: Workspace, path_or_run_id: str | None) -> Path | None:
    """A folder path (any peft folder), or the id of a run in this workspace whose adapter is offered, to the folder;
    None when no adapter is given."""
    value = (path_or_run_id or "").strip()
    if not value:
        return None
    candidate = Path(value).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    offered = find_adapters(workspace)
    for info in offered:
        if info.run_id == value:
            return info.path.resolve()
    known = ", ".join(info.run_id for info in offered) or "none yet (train one on the Fine-tune page)"
    raise StudioError(f"No adapter {value!r}: it is neither a folder nor a completed run in this workspace. Runs with adapters: {known}.")


# ---------------------------------------------------------------- human names
def _preset_of(config: dict) -> str:
    """The training preset a run used ("demo", "quality"), or "custom" when its settings match none."""
    if config.get("preset"):
        return str(config["preset"])
    lora, training = config.get("lora") or {}, config.get("training") or {}
    signature = (lora.get("r"), training.get("learning_rate"), training.get("max_steps"), training.get("batch_size"))
    for name, (preset_lora, preset_training) in PRESETS.items():
        current = (preset_lora.r, preset_training.learning_rate, preset_training.max_steps, preset_training.batch_size)
        if signature in (current, *EARLIER_PRESETS.get(name, ())):
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
