"""Tune: LoRA / QLoRA fine-tuning runs. One module per seam; this package re-exports the public names
so `from core import training as T` keeps working.

- `hparams`: LoraSettings, TrainingSettings, presets, QLoRA support (what a run trains with).
- `facts`: a base model's layers, shapes and context from its config on the meta device (no weights).
- `examples`: rows to token ids (chat template, answer-only labels, packing), shared with the worker.
- `plan`: the pre-launch checks and the time/memory estimate.
- `records`: the `runs` table, each run's folder (progress, log, checkpoints, adapter) and the run lock.
- `runs`: start, cancel, resume, wait, delete (the worker runs as `python -m core.training.worker`).
- `worker`: the training process itself (transformers Trainer + peft); imported only by that process and tests.
Adapter listing is core/adapters.py; export is core/export.py.
"""
from core.training.examples import encode_row, pack_examples  # noqa: F401
from core.training.facts import ModelFacts, lora_parameter_count, model_facts, resolve_lora  # noqa: F401
from core.training.hparams import (  # noqa: F401
    PRECISIONS, PRESETS, QLORA_CPU_NOTE, LoraSettings, TrainingSettings, bnb_4bit_problem, preset, qlora_config, qlora_support,
    settings_from_dict,
)
from core.training.plan import RunPlan, measured_tokens_per_s, plan_run  # noqa: F401
from core.training.records import (  # noqa: F401
    ACTIVE, LOCK_NAME, SCHEMA, STATUSES, RunInfo, acquire_lock, active_run, folder_size, get_run, last_checkpoint,
    list_runs, lock_path, open_runs_db, pid_alive, read_lock, read_log, read_progress, release_lock, run_dir, update_run,
)
from core.training.runs import (  # noqa: F401
    cancel_run, delete_run, new_run_id, process_count, resume_run, start_run, wait_for_run, worker_command,
)
from core.jobs import utc_now  # noqa: F401,E402  (the worker stamps its records with it)
from core.export import export_gguf, export_lora_gguf, export_merged  # noqa: F401,E402  (pages call T.export_*)
