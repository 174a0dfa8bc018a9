"""`python -m core runs list|show ID|cancel ID|resume ID|delete ID|rename ID NAME`."""
from __future__ import annotations

import dataclasses

from core.cli import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("runs", help="fine-tuning run history: list, show, cancel, resume, delete")
    sub = parser.add_subparsers(dest="runs_command", metavar="ACTION")
    lst = sub.add_parser("list", help="all runs, newest first")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    for name, helptext in (("show", "one run with its last progress"), ("cancel", "stop after the current step (keeps a checkpoint)"),
                           ("resume", "continue from the last checkpoint"), ("delete", "remove the run folder and record")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("run_id")
        cmd.add_argument("--json", action="store_true")
        if name == "resume":
            cmd.add_argument("--wait", action="store_true", help="wait and print progress")
        cmd.set_defaults(func=globals()[f"_{name}"])
    rename = sub.add_parser("rename", help="give a run's adapter a human name (empty: back to dataset · preset · date)")
    rename.add_argument("run_id")
    rename.add_argument("name")
    rename.add_argument("--json", action="store_true")
    rename.set_defaults(func=_rename)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _ws(args):
    from core.settings import get_workspace

    return get_workspace(args.workspace)


def _list(args) -> int:
    from core.training import list_runs

    from core.adapters import adapter_name

    ws = _ws(args)
    runs = list_runs(ws)
    if args.json:
        print_json([{**dataclasses.asdict(r), "name": adapter_name(ws, r.id)} for r in runs])
        return 0
    if not runs:
        print("no runs yet")
    for r in runs:
        loss = f"{r.final_loss:.4f}" if r.final_loss is not None else "-"
        print(f"{r.id:32} {r.status:10} dataset={r.dataset_id:20} loss={loss:8} {r.created_at}  {adapter_name(ws, r.id)}")
    return 0


def _rename(args) -> int:
    from core.adapters import rename_adapter

    name = rename_adapter(_ws(args), args.run_id, args.name)
    print_json({"run_id": args.run_id, "name": name}) if args.json else print(f"{args.run_id} is now called {name!r}")
    return 0


def _show(args) -> int:
    from core.training import get_run, last_checkpoint, read_log, read_progress

    ws = _ws(args)
    run = get_run(ws, args.run_id)
    steps = [e for e in read_progress(ws, run.id) if e.get("event") == "step"]
    ckpt = last_checkpoint(ws, run.id)
    if args.json:
        print_json({**dataclasses.asdict(run), "last_progress": steps[-1] if steps else None, "last_checkpoint": str(ckpt) if ckpt else None})
        return 0
    print(f"run {run.id}: {run.status} (dataset {run.dataset_id}, base {run.base_model})")
    if steps:
        e = steps[-1]
        print(f"step {e['step']}/{e['total']} loss {e['loss']:.4f} {e['tokens_per_s']:.0f} tok/s elapsed {e['elapsed']:.0f}s")
    if ckpt:
        print(f"last checkpoint: {ckpt.name}")
    if run.error:
        print(f"error: {run.error}")
    print(read_log(ws, run.id, 10))
    return 0


def _cancel(args) -> int:
    from core.training import cancel_run

    run = cancel_run(_ws(args), args.run_id)
    print_json({"run_id": run.id, "cancel_requested": True}) if args.json else print(f"stop requested for {run.id}")
    return 0


def _resume(args) -> int:
    from core.training import resume_run, wait_for_run

    ws = _ws(args)
    run = resume_run(ws, args.run_id)
    if getattr(args, "wait", False):
        run = wait_for_run(ws, run.id, on_event=lambda e: e.get("event") == "step" and not args.json and print(
            f"step {e['step']}/{e['total']} loss {e['loss']:.4f}", flush=True))
    print_json({"run_id": run.id, "status": run.status}) if args.json else print(f"run {run.id}: {run.status}")
    return 0


def _delete(args) -> int:
    from core.training import delete_run

    delete_run(_ws(args), args.run_id)
    print_json({"run_id": args.run_id, "deleted": True}) if args.json else print(f"deleted {args.run_id}")
    return 0
