"""The bounded reader: each file is read in its own worker process, stopped at a wall-time budget.

forkserver, so the app's threads, locks and loaded models are never copied into the worker; its
address space is capped (`max_memory_mb`), so a zip or XML bomb fails there with MemoryError. The
worker sends progress and then the document, or a message that names the file and the remedy.
"""
from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
import time
import types
from pathlib import Path

from core.documents import (
    DocumentError,
    ExtractedDocument,
    ExtractionLimits,
    ProgressCallback,
    Source,
    check_size,
    extract_document,
    safe_filename,
    suffix_kind,
)

log = logging.getLogger(__name__)

_CONTEXT = None
_START_LOCK = threading.Lock()


def _worker_context():
    """forkserver where the platform has it: a fresh, small server process forks each worker, so the
    app's threads, locks and loaded models are never copied into it (a plain fork of Streamlit is unsafe).
    """
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            # Import the readers once in the server; each worker then starts in ~10 ms. No __main__:
            # the app's entry script must not run again in the server.
            context.set_forkserver_preload(["core.bounded_reader", "core.pdf_reader", "pypdfium2", "pypdf", "docx"])
        else:
            context = multiprocessing.get_context("spawn")
        _CONTEXT = context
    return _CONTEXT


def _start_without_main(worker) -> None:
    """Start the worker without re-running the app's entry script in it.

    multiprocessing re-imports `__main__` in every forkserver/spawn child; under `streamlit run`
    that is Streamlit's CLI (about 1 s of imports per file read). The worker needs only
    core.bounded_reader, so the parent shows it an empty `__main__` for the moment of the start.
    """
    with _START_LOCK:
        real = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            worker.start()
        finally:
            if real is not None:
                sys.modules["__main__"] = real


def _worker_main(conn, name: str, source: Source, limits: ExtractionLimits) -> None:
    """Runs in the worker: read (from disk if given a path), extract, send ("ok", document) or ("error", message)."""
    try:
        try:
            import resource

            cap = limits.max_memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # a bomb fails here with MemoryError, not the machine
        except (ImportError, ValueError, OSError) as error:  # no such limit on this platform
            log.debug("reader memory limit not set: %s", error)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] > 0.2:  # a few messages a second, not one per page
                last[0] = now
                conn.send(("progress", done, total))

        if isinstance(source, Path):
            check_size(name, source.stat().st_size, limits)
            data = source.read_bytes()
        else:
            data = source
        conn.send(("ok", extract_document(name, data, progress, limits)))
    except DocumentError as error:
        conn.send(("error", str(error)))
    except MemoryError:
        conn.send(("error", f"“{name}” needs more than {limits.max_memory_mb} MB of memory to read (the limit `max_memory_mb`); "
                            f"it may be a zip or XML bomb. Split it into smaller files, or {ExtractionLimits.how_to_raise('max_memory_mb')}."))
    except Exception as error:  # a reader bug on one file: a message, never a traceback to the user
        log.exception("Reading %s failed", name)
        conn.send(("error", f"“{name}” could not be read ({type(error).__name__}). Re-export it as PDF, TXT or DOCX and try again."))
    finally:
        conn.close()


def extract_document_bounded(
    name: str, source: Source, progress: ProgressCallback | None = None, limits: ExtractionLimits | None = None
) -> ExtractedDocument:
    """Read one file in a worker process stopped after `limits.seconds_per_file`.

    `source` is the file's bytes or, better, its path: the worker reads it, so the caller never holds
    a batch in memory. Sizes are checked from the file system before anything is read.
    """
    limits = limits or ExtractionLimits()
    limits.validate()
    name = safe_filename(name)
    suffix_kind(name)
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
        except OSError as error:
            raise DocumentError(f"“{name}” cannot be opened ({error.strerror}). Check that the file exists.") from None
    else:
        size = len(source)
    check_size(name, size, limits)
    context = _worker_context()
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_worker_main, args=(sender, name, source, limits), daemon=True, name=f"read {name[:40]}")
    _start_without_main(worker)
    sender.close()
    deadline = time.monotonic() + limits.seconds_per_file
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DocumentError(
                    f"“{name}” took longer than {limits.seconds_per_file:g} s to read (the limit `seconds_per_file`) "
                    "and was stopped; nothing of it was stored. It may be a decompression bomb, or just very large: "
                    f"split it into smaller files, or {ExtractionLimits.how_to_raise('seconds_per_file')}."
                )
            if not receiver.poll(min(remaining, 0.5)):
                continue
            try:
                message = receiver.recv()
            except EOFError:
                worker.join(5)
                raise DocumentError(
                    f"“{name}” crashed the reader (exit code {worker.exitcode}); nothing of it was stored. "
                    f"The file is probably damaged, or needed more than {limits.max_memory_mb} MB (`max_memory_mb`): "
                    "re-export or re-download it."
                ) from None
            if message[0] == "progress":
                if progress:
                    progress(message[1], message[2])
            elif message[0] == "ok":
                return message[1]
            else:
                raise DocumentError(message[1])
    finally:
        receiver.close()
        if worker.is_alive():
            worker.kill()
        worker.join(5)
