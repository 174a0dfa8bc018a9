"""`python -m core train --dataset ID --preset demo|quality [--model ID_OR_DIR] [--processes N]`: a LoRA run with progress lines."""
from __future__ import annotations

import dataclasses

from core.cli import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="fine-tune a LoRA adapter on a dataset (waits and prints progress)")
    parser.add_argument("--dataset", required=True, help="dataset id")
    parser.add_argument("--preset", choices=("demo", "quality"), default="demo")
    parser.add_argument("--max-steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--lr", type=float, default=None, help="override the learning rate")
    parser.add_argument("--r", type=int, default=None, help="override the LoRA rank")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--model", default=None, help="base model: a Hugging Face id or a local folder (default: the embedded SmolLM2)")
    parser.add_argument("--target-set", choices=("all linear", "attention"), default=None,
                        help="LoRA targets from the model family's table (core/families.py)")
    parser.add_argument("--target-modules", default=None, help="comma list of Linear layer names (overrides --target-set)")
    parser.add_argument("--processes", type=int, default=None, help="data-parallel processes (accelerate/DDP); default: one per GPU")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="less memory, ~30%% slower (large models)")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16", "float16"), default=None)
    parser.add_argument("--qlora", action="store_true", help="4-bit NF4 base weights through bitsandbytes (CUDA or CPU; not Apple MPS)")
    parser.add_argument("--save-steps", type=int, default=None, help="checkpoint every N steps")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--no-wait", action="store_true", help="start the run and return at once")
    parser.add_argument("--json", action="store_true", help="JSON lines: one per progress event, then the result")
    parser.set_defaults(func=_train)


def _train(args) -> int:
    import json

    from core import training as T
    from core.settings import get_workspace

    from core.errors import StudioError

    if args.run_id is not None and not args.run_id.strip():
        raise StudioError("--run-id is empty: give the run a name (letters, digits, dots, dashes), or leave the option out for a generated one.")
    ws = get_workspace(args.workspace)
    lora, training = T.preset(args.preset)
    if args.max_steps is not None:
        training = dataclasses.replace(training, max_steps=args.max_steps)
    if args.lr is not None:
        training = dataclasses.replace(training, learning_rate=args.lr)
    if args.batch_size is not None:
        training = dataclasses.replace(training, batch_size=args.batch_size)
    if args.r is not None:
        lora = dataclasses.replace(lora, r=args.r, alpha=2 * args.r)
    if args.model:
        training = dataclasses.replace(training, base_model=args.model)
    if args.target_set:
        lora = dataclasses.replace(lora, target_set=args.target_set, target_modules=())
    if args.target_modules:
        lora = dataclasses.replace(lora, target_modules=tuple(n.strip() for n in args.target_modules.split(",") if n.strip()))
    overrides = {"processes": args.processes, "precision": args.precision, "save_steps": args.save_steps, "seed": args.seed}
    training = dataclasses.replace(training, **{k: v for k, v in overrides.items() if v is not None})
    if args.gradient_checkpointing:
        training = dataclasses.replace(training, gradient_checkpointing=True)
    if args.qlora:
        training = dataclasses.replace(training, qlora=True)
    plan = T.plan_run(ws, args.dataset, lora, training)
    if not args.json:
        print(f"{plan.trainable_params:,} trainable parameters ({plan.trainable_percent:.2f}%), {plan.total_steps} steps, "
              f"~{plan.tokens:,} tokens, estimated {plan.est_seconds / 60:.1f} min, ~{plan.est_memory_gb:.1f} GB")
    run = T.start_run(ws, args.dataset, lora, training, run_id=args.run_id)
    if args.no_wait:
        print_json({"run_id": run.id, "status": run.status}) if args.json else print(f"started {run.id}")
        return 0

    def show(event: dict) -> None:
        if args.json:
            print(json.dumps(event), flush=True)
        elif event.get("event") == "step":
            print(f"step {event['step']}/{event['total']} loss {event['loss']:.4f} lr {event['learning_rate']:.2e} "
                  f"{event['tokens_per_s']:.0f} tok/s elapsed {event['elapsed']:.0f}s eta {event['eta']:.0f}s", flush=True)

    try:
        run = T.wait_for_run(ws, run.id, on_event=show)
    except KeyboardInterrupt:
        T.cancel_run(ws, run.id)
        print(f"cancel requested for {run.id}; resume with `python -m core runs resume {run.id}`")
        raise
    from core.adapters import find_adapters

    adapter = next((str(info.path) for info in find_adapters(ws) if info.run_id == run.id), None)  # the rule every page uses
    if args.json:
        print_json({"run_id": run.id, "status": run.status, "final_loss": run.final_loss, "adapter": adapter, "error": run.error,
                    "base_model": run.base_model, "target_modules": run.config.get("lora", {}).get("target_modules")})
    else:
        print(f"run {run.id}: {run.status}" + (f", final loss {run.final_loss:.4f}" if run.final_loss is not None else ""))
        if adapter:
            print(f"adapter: {adapter}")
        if run.error:
            print(f"error: {run.error}")
    return 0 if run.status == "completed" else 1
