"""Find LoRA adapters in the workspace: `runs/<run_id>/adapter/adapter_config.json`.

Works before and after core.training lands (it only scans the folders a training run writes).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import StudioError
from core.settings import Workspace


@dataclass(frozen=True)
class AdapterInfo:
    run_id: str
    path: Path
    base_model: str
    rank: int | None
    target_modules: tuple[str, ...]
    modified: str

    @property
    def label(self) -> str:
        return f"{self.run_id} · r={self.rank} · {self.modified[:16].replace('T', ' ')}"


def _info(run_id: str, folder: Path) -> AdapterInfo | None:
    config_file = folder / "adapter_config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    targets = config.get("target_modules") or ()
    targets = (targets,) if isinstance(targets, str) else tuple(sorted(targets))
    modified = datetime.fromtimestamp(config_file.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    return AdapterInfo(run_id, folder, str(config.get("base_model_name_or_path") or ""), config.get("r"), targets, modified)


def find_adapters(workspace: Workspace) -> list[AdapterInfo]:
    """Every adapter folder under runs/, newest first."""
    found = []
    if workspace.runs.is_dir():
        for config_file in workspace.runs.glob("*/adapter/adapter_config.json"):
            info = _info(config_file.parent.parent.name, config_file.parent)
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
