"""The training process: `python -m core.train_worker RUN_DIR`.

Started by core.training.start_run/resume_run as its own process (never a fork of Streamlit). It
reads RUN_DIR/config.json, trains a LoRA adapter with transformers' Trainer + peft, appends progress
events to progress.jsonl, obeys RUN_DIR/STOP between steps and records its status in SQLite.
stdout/stderr go to RUN_DIR/train.log (the parent redirects them).
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

log = logging.getLogger("core.train_worker")


class ProgressWriter:
    def __init__(self, path: Path):
        self.path = path

    def rewind(self, step: int) -> list[dict]:
        """Keep only the events up to `step` (the checkpoint a resume starts from) and return them.

        Steps after the checkpoint are trained again, so their old events would make the loss curve
        double back; an earlier session's "end" event is dropped too. Written atomically.
        """
        from core.storage import atomic_write_text

        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        kept = []
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a killed worker
            if event.get("event") != "end" and int(event.get("step") or 0) <= step:
                kept.append(event)
        atomic_write_text(self.path, "".join(json.dumps(event) + "\n" for event in kept))
        return kept

    def write(self, event: dict) -> None:
        # one short line per append: a reader never sees a half line except a torn last one, which it skips
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")
            handle.flush()


def build_examples(tokenizer, rows, training):
    from core.training import encode_row, pack_examples

    examples = [encode_row(tokenizer, row, training.max_length, training.completion_only_loss) for row in rows]
    examples = [e for e in examples if any(label != -100 for label in e["labels"])]
    if training.packing:
        examples = pack_examples(examples, training.max_length)
    return examples


class TokenCountingCollator:
    """Pads a batch to its longest row and counts real (non-pad) tokens for tokens/s."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id
        self.tokens = 0

    def __call__(self, batch):
        import torch

        width = max(len(e["input_ids"]) for e in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, e in enumerate(batch):
            n = len(e["input_ids"])
            ids[i, :n] = torch.tensor(e["input_ids"])
            labels[i, :n] = torch.tensor(e["labels"])
            mask[i, :n] = 1
        self.tokens += int(mask.sum())
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def make_callback(run_path: Path, writer: ProgressWriter, collator: TokenCountingCollator, elapsed_before: float):
    from transformers import TrainerCallback

    class StudioProgress(TrainerCallback):
        """Writes a progress event per logged step and turns RUN_DIR/STOP into a checkpoint + stop."""

        def __init__(self):
            self.started = None
            self.first_step = None
            self.stopped = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()
            self.first_step = state.global_step
            collator.tokens = 0
            writer.write({"event": "start", "step": state.global_step, "total": state.max_steps, "time": time.time()})

        def on_step_end(self, args, state, control, **kwargs):
            if (run_path / "STOP").exists():
                self.stopped = True
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return
            session = time.perf_counter() - self.started
            done = max(1, state.global_step - self.first_step)
            eta = (state.max_steps - state.global_step) * session / done
            writer.write({
                "event": "step", "step": state.global_step, "total": state.max_steps, "loss": float(logs["loss"]),
                "learning_rate": float(logs.get("learning_rate", 0.0)), "tokens_per_s": collator.tokens / max(session, 1e-6),
                "elapsed": elapsed_before + session, "eta": eta, "epoch": float(state.epoch or 0.0), "time": time.time(),
                "load": os.getloadavg()[0],  # the speed above was measured at this load: the next estimate scales from it
            })

    return StudioProgress()


def choose_threads() -> int:
    """All cores on an idle machine, one when it is busy.

    Measured on the 2-core box with other jobs running (load ~10): LoRA forward+backward on
    SmolLM2-135M ran 117-122 tokens/s with 1 thread and 15-33 with 2, because OpenMP threads
    spin at barriers while the OS runs someone else. STUDIO_TRAIN_THREADS overrides.
    """
    if os.environ.get("STUDIO_TRAIN_THREADS"):
        return max(1, int(os.environ["STUDIO_TRAIN_THREADS"]))
    cpus = os.cpu_count() or 1
    return 1 if os.getloadavg()[0] >= 0.75 * cpus else cpus


def main(run_dir: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    run_path = Path(run_dir).resolve()
    config = json.loads((run_path / "config.json").read_text())
    run_id = config["run_id"]

    from core import training as T
    from core.settings import get_workspace

    workspace = get_workspace(config["workspace"])
    writer = ProgressWriter(run_path / "progress.jsonl")
    checkpoint = T.last_checkpoint(workspace, run_id)
    resume_step = int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0
    previous = [e for e in writer.rewind(resume_step) if e.get("event") == "step"]
    elapsed_before = previous[-1]["elapsed"] if previous else 0.0  # time trained up to the checkpoint
    began = time.perf_counter()
    # SIGTERM (e.g. the machine shutting down) = a cancel: checkpoint after this step, then stop
    signal.signal(signal.SIGTERM, lambda *_: (run_path / "STOP").write_text("SIGTERM"))
    T.update_run(workspace, run_id, status="running", pid=os.getpid(), started_at=T.get_run(workspace, run_id).started_at or T._now())
    try:
        import torch

        threads = choose_threads()
        torch.set_num_threads(threads)
        log.info("Using %d torch thread(s) (load average %.1f on %d CPUs)", threads, os.getloadavg()[0], os.cpu_count() or 1)
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

        from core.datasets import load_dataset_rows
        from core.models import GeneratorSpec, resolve_generator_path

        lora, training = T.settings_from_dict(config)
        path = resolve_generator_path(GeneratorSpec(model_id=training.base_model), workspace)
        cuda = torch.cuda.is_available()
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if training.qlora:
            from peft import prepare_model_for_kbit_training
            from transformers import BitsAndBytesConfig

            quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
            model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, dtype=torch.bfloat16)
            model = prepare_model_for_kbit_training(model)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if cuda else torch.float32)
        model.config.use_cache = False
        peft_config = LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM", bias="none",
        )
        model = get_peft_model(model, peft_config)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if trainable == 0:
            raise RuntimeError("0 trainable parameters: none of the target modules matched")
        log.info("Run %s: %d trainable parameters", run_id, trainable)

        rows = load_dataset_rows(workspace, config["dataset_id"], "train")
        examples = build_examples(tokenizer, rows, training)
        if not examples:
            raise RuntimeError("no training example has answer tokens left after truncation; raise max length")
        collator = TokenCountingCollator(tokenizer.pad_token_id)
        args = TrainingArguments(
            output_dir=str(run_path / "checkpoints"),
            per_device_train_batch_size=training.batch_size,
            gradient_accumulation_steps=training.grad_accum,
            learning_rate=training.learning_rate,
            num_train_epochs=training.epochs,
            max_steps=training.max_steps if training.max_steps > 0 else -1,
            warmup_steps=training.warmup_steps,
            lr_scheduler_type="linear",
            logging_steps=1,
            save_strategy="steps",
            save_steps=training.save_steps,
            save_total_limit=2,
            seed=training.seed,
            data_seed=training.seed,
            report_to="none",
            disable_tqdm=True,
            use_cpu=not cuda,
            bf16=bool(cuda),
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            remove_unused_columns=False,
        )
        callback = make_callback(run_path, writer, collator, elapsed_before)
        trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator, callbacks=[callback])
        checkpoint = T.last_checkpoint(workspace, run_id)
        if checkpoint:
            log.info("Resuming from %s", checkpoint)
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        steps = [e for e in T.read_progress(workspace, run_id) if e.get("event") == "step"]
        final_loss = steps[-1]["loss"] if steps else float(result.training_loss)
        duration = elapsed_before + (time.perf_counter() - began)
        if callback.stopped:
            writer.write({"event": "end", "status": "cancelled", "step": trainer.state.global_step, "time": time.time()})
            T.update_run(workspace, run_id, status="cancelled", final_loss=final_loss, finished_at=T._now(), duration_s=duration, pid=None)
            log.info("Run %s cancelled at step %d; checkpoint kept", run_id, trainer.state.global_step)
            return 0
        adapter = run_path / "adapter"
        model.save_pretrained(str(adapter))
        tokenizer.save_pretrained(str(adapter))
        size = T.folder_size(adapter)
        writer.write({"event": "end", "status": "completed", "step": trainer.state.global_step, "loss": final_loss, "time": time.time()})
        T.update_run(
            workspace, run_id, status="completed", final_loss=final_loss, finished_at=T._now(), duration_s=duration,
            adapter_size=size, error=None, pid=None,
        )
        log.info("Run %s completed: final loss %.4f, adapter %d bytes", run_id, final_loss, size)
        from core.storage import backup_catalogue

        backup_catalogue(workspace)  # a rolling copy of studio.db after every completed run
        return 0
    except BaseException as error:  # record every failure (incl. MemoryError) so the UI can show it
        traceback.print_exc()
        reason = f"{type(error).__name__}: {error}"
        if isinstance(error, MemoryError):
            reason = "Out of memory: lower the batch size or max length. " + reason
        writer.write({"event": "end", "status": "failed", "error": reason, "time": time.time()})
        T.update_run(workspace, run_id, status="failed", error=reason + " Checkpoints are kept; resume to continue.", finished_at=T._now(), pid=None)
        return 1
    finally:
        T.release_lock(workspace, os.getpid())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
