"""Background jobs for the app: a daemon thread per job, registered under a key, with a cancel flag.

Evaluations (key: the evaluation id) and RAGAS judging (key: "judge:<evaluation id>") run here. A job's thread
only writes to the workspace; the page polls what the job records there (never call st.* from a job).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any, Callable

log = logging.getLogger(__name__)


def utc_now() -> str:
    """The time a job started or finished, as stored in its records (ISO 8601, seconds, UTC)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Job:
    """`target(cancel_event)` in a daemon thread; a failure is logged and kept in `error` for the page."""

    def __init__(self, key: str, target: Callable[[threading.Event], Any]):
        self.key = key
        self.cancel_event = threading.Event()
        self.error: str | None = None
        self._target = target
        self.thread = threading.Thread(target=self._run, name=f"job-{key}", daemon=True)

    def _run(self) -> None:
        try:
            self._target(self.cancel_event)
        except BaseException as error:  # the target records it in the workspace too; kept here for the page
            log.exception("Job %s failed", self.key)
            self.error = str(error)

    def start(self) -> "Job":
        self.thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


_JOBS: dict[str, Job] = {}
_JOBS_LOCK = threading.Lock()


def start_job(key: str, target: Callable[[threading.Event], Any]) -> Job:
    """Register and start a background job under `key` (an evaluation id, or e.g. "judge:<id>")."""
    job = Job(key, target)
    with _JOBS_LOCK:
        _JOBS[key] = job
    return job.start()


def get_job(key: str) -> Job | None:
    with _JOBS_LOCK:
        return _JOBS.get(key)
