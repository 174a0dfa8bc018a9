"""The training process: `python -m core.training.worker RUN_DIR`.

Started by core.training.runs.start_run/resume_run as its own process (never a fork of Streamlit). It
reads RUN_DIR/config.json, trains a LoRA adapter with transformers' Trainer + peft, appends progress
events to progress.jsonl, obeys RUN_DIR/STOP between steps and records its status in SQLite.
stdout/stderr go to RUN_DIR/train.log (the parent redirects them).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path

log = logging.getLogger("core.training.worker")


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


def make_callback(run_path: Path, writer: ProgressWriter, collator, elapsed_before: float, threads: int, adapt_threads: bool):
    from transformers import TrainerCallback

    class StudioProgress(TrainerCallback):
        """Writes a progress event per logged step, turns RUN_DIR/STOP into a checkpoint + stop, and (when
        `adapt_threads`) follows the cores other processes take or give back during the run (`retune_threads`)."""

        def __init__(self):
            self.started = None
            self.first_step = None
            self.stopped = False
            self.threads = threads

        def on_step_begin(self, args, state, control, **kwargs):
            if adapt_threads:
                self.threads = retune_threads(self.threads)

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()
            self.first_step = state.global_step
            collator.tokens = 0
            if state.is_world_process_zero:  # with several processes only rank 0 writes
                writer.write({"event": "start", "step": state.global_step, "total": state.max_steps, "time": time.time()})
                model = kwargs.get("model")
                log.info("Training on %s process(es); gradient checkpointing %s", args.world_size,
                         "on" if getattr(model, "is_gradient_checkpointing", False) else "off")

        def on_step_end(self, args, state, control, **kwargs):
            if stop_requested(run_path):
                self.stopped = True
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs or not state.is_world_process_zero:
                return
            session = time.perf_counter() - self.started
            done = max(1, state.global_step - self.first_step)
            eta = (state.max_steps - state.global_step) * session / done
            writer.write({
                "event": "step", "step": state.global_step, "total": state.max_steps, "loss": float(logs["loss"]),
                "learning_rate": float(logs.get("learning_rate", 0.0)), "tokens_per_s": collator.tokens / max(session, 1e-6),
                "elapsed": elapsed_before + session, "eta": eta, "epoch": float(state.epoch or 0.0), "time": time.time(),
                "load": os.getloadavg()[0],  # the speed above was measured at this load: the next estimate scales from it
                "threads": self.threads,
            })

    return StudioProgress()


def stop_requested(run_path: Path) -> bool:
    """RUN_DIR/STOP exists, agreed by every process (a rank that stopped alone would hang the others in all-reduce)."""
    stop = (run_path / "STOP").exists()
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        import torch

        flag = torch.tensor([1 if stop else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        stop = bool(flag.item())
    return stop


def process_rank() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (torch.distributed.run sets RANK and WORLD_SIZE)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def die_with_launcher() -> None:
    """Under a launcher, end this rank when the launcher dies (kill -9 of it must not leave ranks training)."""
    if process_rank()[1] <= 1 or not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the launcher was already gone before prctl
        os._exit(1)


def training_device(precision: str, cpu_bf16: bool = True, threads: int | None = None) -> tuple[str, str]:
    """(device, dtype): CUDA in bf16 (fp16 on GPUs without bf16), Apple MPS in fp32, the CPU in bf16 only where
    core.machine says bf16 is native and the cores are not shared (`fast_cpu_dtype`), else fp32; unless asked otherwise.

    On the CPU, bf16 means autocast over fp32 weights (`cpu_autocast`): the LoRA weights and Adam state stay fp32.
    `cpu_bf16=False` keeps 'auto' at fp32 on the CPU (QLoRA, whose compute dtype is its own setting).
    bf16's collapse on shared cores is a many-thread one: a run on 1 torch thread (`threads`, what `choose_threads`
    gives when a core is busy) takes bf16 wherever it is native. Measured with the other core spinning, demo preset,
    1 thread: fp32 0.198 / 0.194 steps/s, bf16 0.268 / 0.277 (1.38x; bench/RESULTS_train.md).
    """
    import torch

    if torch.cuda.is_available():
        device = "cuda"
        auto = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, auto = "mps", "float32"  # mixed precision on MPS is partial; fp32 is the safe default
    else:
        from core.machine import NATIVE_BF16_FLAGS, cpu_flags, fast_cpu_dtype

        native = any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)
        device = "cpu"
        if not cpu_bf16:
            auto = "float32"
        elif threads == 1 and native:
            auto = "bfloat16"
        else:
            auto = fast_cpu_dtype()
    return device, auto if precision == "auto" else precision


def cpu_autocast(device: str, dtype_name: str, qlora: bool) -> bool:
    """bf16 on the CPU runs as autocast: fp32 weights, bf16 matmuls (qlora keeps its own compute dtype)."""
    return device == "cpu" and dtype_name == "bfloat16" and not qlora


THREADS_ENV = "STUDIO_TRAIN_THREADS"  # a fixed thread count for training, kept for the whole run


def choose_threads() -> int:
    """The cores nobody else is using (core.machine), sampled for half a second at the start of a run; THREADS_ENV overrides."""
    from core.machine import torch_threads

    return torch_threads(sample_s=0.5, override_env=THREADS_ENV)


def retune_threads(current: int) -> int:
    """The torch threads for the next step: the cores nobody else used since the previous step.

    Chosen once at the start, a run that took both cores while the machine was idle collapsed when another job started
    beside it (2 threads: 92 -> 17 tokens/s on the 2-core box; OpenMP threads wait for each other at every barrier).
    Measured since the previous step (core.machine keeps the last snapshot), so it costs no sampling pause. A count
    fixed by THREADS_ENV stays.
    """
    from core.machine import torch_threads

    wanted = torch_threads(sample_s=0.2, override_env=THREADS_ENV, reuse_within_s=3600.0)
    if wanted != current:
        import torch

        torch.set_num_threads(wanted)
        log.info("Torch threads %d -> %d (cores used by other processes changed)", current, wanted)
    return wanted


def main(run_dir: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    run_path = Path(run_dir).resolve()
    config = json.loads((run_path / "config.json").read_text())
    run_id = config["run_id"]

    from core import training as T
    from core.settings import get_workspace

    workspace = get_workspace(config["workspace"])
    die_with_launcher()
    rank, world = process_rank()
    main_process = rank == 0
    # one process: it owns the run record and the lock; several: the launcher's pid stays the run's pid
    owner_pid = os.getpid() if world == 1 else os.getppid()
    writer = ProgressWriter(run_path / "progress.jsonl")
    checkpoint = T.last_checkpoint(workspace, run_id)
    resume_step = int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0
    # rank 0 alone touches progress.jsonl: another rank's rewind could race rank 0's appends and drop them
    previous = [e for e in writer.rewind(resume_step) if e.get("event") == "step"] if main_process else []
    elapsed_before = previous[-1]["elapsed"] if previous else 0.0  # time trained up to the checkpoint
    began = time.perf_counter()
    # SIGTERM (e.g. the machine shutting down) = a cancel: checkpoint after this step, then stop
    signal.signal(signal.SIGTERM, lambda *_: (run_path / "STOP").write_text("SIGTERM"))
    if main_process:
        T.update_run(workspace, run_id, status="running", pid=owner_pid, started_at=T.get_run(workspace, run_id).started_at or T.utc_now())
    try:
        import torch

        threads = choose_threads()
        if world > 1:  # the cores are shared between the ranks
            threads = max(1, min(threads, (os.cpu_count() or 1) // world))
        torch.set_num_threads(threads)
        log.info("Using %d torch thread(s) (load average %.1f on %d CPUs)", threads, os.getloadavg()[0], os.cpu_count() or 1)
        if main_process:
            from core.run_view import cpu_probe

            # what the CPU gives at the start of this session: the next pre-launch estimate scales this run's speed by it
            writer.write({"event": "probe", "gflops": cpu_probe(threads=threads), "load": os.getloadavg()[0], "time": time.time()})
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        from core.datasets.store import load_dataset_rows
        from core.models import GeneratorSpec, resolve_generator_path
        from core.training.batches import (PaddingFreeCollator, TokenCountingCollator, build_examples, completion_loss,
                                           logits_subset_ok, packed_attention_ok)

        from core.families import load_tokenizer

        lora, training = T.settings_from_dict(config)
        path = resolve_generator_path(GeneratorSpec(model_id=training.base_model), workspace)
        model_type = (config.get("base") or {}).get("model_type")
        device, dtype_name = training_device(training.precision, cpu_bf16=not training.qlora, threads=threads)
        autocast = cpu_autocast(device, dtype_name, training.qlora)
        log.info("Precision %s on %s (%s)", dtype_name, device, "bf16 autocast over fp32 weights" if autocast else "weights in this dtype")
        tokenizer = load_tokenizer(path, model_type)  # family quirks: pad token, system turn folded for Gemma
        if training.qlora:
            from peft import prepare_model_for_kbit_training

            problem = T.bnb_4bit_problem(device)
            if problem:
                raise RuntimeError(f"QLoRA cannot run here: {problem}")

            # each rank holds its own 4-bit copy on its own device (device_map), as DDP expects
            place = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if device == "cuda" else device
            model = AutoModelForCausalLM.from_pretrained(path, quantization_config=T.qlora_config(dtype_name), dtype=getattr(torch, dtype_name),
                                                         device_map={"": place})
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=training.gradient_checkpointing)
            packed = sum(1 for m in model.modules() if type(m).__name__ == "Linear4bit")
            log.info("QLoRA: %d Linear layers hold 4-bit NF4 weights on %s (compute %s)", packed, device, dtype_name)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if autocast else getattr(torch, dtype_name))
        model.config.use_cache = False  # no key/value cache in training; the packed-examples mask also needs none
        if not lora.target_modules:  # a config written by hand: resolve from the family table as plan_run does
            lora = T.resolve_lora(lora, T.model_facts(workspace, training.base_model))
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
        subset = logits_subset_ok(model)
        if training.packing and packed_attention_ok(model):
            collator = PaddingFreeCollator()
        else:
            if training.packing:
                log.warning("This model cannot keep packed rows apart; packed rows will attend to each other")
            collator = TokenCountingCollator(tokenizer.pad_token_id, keep_logits=subset)
        own_loss = isinstance(collator, PaddingFreeCollator) or subset
        log.info("Batches: %s; logits %s", type(collator).__name__, "only where a label follows" if own_loss else "at every position")
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
            use_cpu=device == "cpu",
            # mixed precision on CUDA, and bf16 autocast on a native-bf16 CPU; elsewhere the weights are in the chosen dtype
            bf16=(device == "cuda" and dtype_name == "bfloat16") or autocast,
            fp16=device == "cuda" and dtype_name == "float16",
            gradient_checkpointing=training.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if training.gradient_checkpointing else None,
            ddp_find_unused_parameters=False if world > 1 else None,
            ddp_backend=("nccl" if device == "cuda" else "gloo") if world > 1 else None,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            remove_unused_columns=False,
        )
        # several ranks share the cores: each keeps its share; one process follows the machine (retune_threads)
        callback = make_callback(run_path, writer, collator, elapsed_before, threads, adapt_threads=world == 1)
        trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator, callbacks=[callback],
                          compute_loss_func=completion_loss if own_loss else None)
        checkpoint = T.last_checkpoint(workspace, run_id)
        if checkpoint:
            log.info("Resuming from %s", checkpoint)
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        steps = [e for e in T.read_progress(workspace, run_id) if e.get("event") == "step"]
        final_loss = steps[-1]["loss"] if steps else float(result.training_loss)
        duration = elapsed_before + (time.perf_counter() - began)
        if not main_process:
            return 0  # rank 0 records the end, saves the adapter and releases the lock
        if callback.stopped:
            writer.write({"event": "end", "status": "cancelled", "step": trainer.state.global_step, "time": time.time()})
            T.update_run(workspace, run_id, status="cancelled", final_loss=final_loss, finished_at=T.utc_now(), duration_s=duration, pid=None)
            log.info("Run %s cancelled at step %d; checkpoint kept", run_id, trainer.state.global_step)
            return 0
        adapter = run_path / "adapter"
        model.save_pretrained(str(adapter))
        tokenizer.save_pretrained(str(adapter))
        base = config.get("base") or {}
        if base.get("config_hash"):
            from core.families import write_adapter_base

            write_adapter_base(adapter, base.get("model", training.base_model), base["config_hash"])
        size = T.folder_size(adapter)
        writer.write({"event": "end", "status": "completed", "step": trainer.state.global_step, "loss": final_loss, "time": time.time()})
        T.update_run(
            workspace, run_id, status="completed", final_loss=final_loss, finished_at=T.utc_now(), duration_s=duration,
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
        if main_process:
            writer.write({"event": "end", "status": "failed", "error": reason, "time": time.time()})
            T.update_run(workspace, run_id, status="failed", error=reason + " Checkpoints are kept; resume to continue.", finished_at=T.utc_now(), pid=None)
        return 1
    finally:
        if main_process:
            T.release_lock(workspace, owner_pid)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
