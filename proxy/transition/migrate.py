"""``migrate``: bring every object of a route (or of one shard of it) to the target format.

Lists the route (ListObjectsV2 or an Inventory manifest), keeps this shard's keys, skips the
keys a resumed state file records as done, aborts the multipart uploads a killed run left open,
and runs :class:`~proxy.transition.rewrite.Rewriter` on the rest with bounded concurrency.
Each failure is one JSON line on ``out`` (key, reason, location, detail); the summary counts
rewritten, skipped, conflict (attempts that met a concurrent write), failed and bytes written.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from proxy.config import RouteConfig
from proxy.transition.listing import ObjectRef, count_in_background, keys_of
from proxy.transition.progress import Progress
from proxy.transition.rewrite import Plan, Result, Rewriter, abort_upload
from proxy.transition.shard import WHOLE, Shard
from proxy.transition.state import NoState, StateFile
from proxy.transition.workers import for_each


@dataclass
class Summary:
    rewritten: int = 0
    skipped: int = 0
    conflict: int = 0
    failed: int = 0
    bytes: int = 0
    dry_run: bool = False
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MigrateJob:
    route: RouteConfig
    plan: Plan
    shard: Shard = WHOLE
    concurrency: int = 8
    state_path: Path | None = None
    manifest: str | None = None


def _header(job: MigrateJob) -> dict[str, Any]:
    return {
        "route": job.route.name,
        "bucket": job.route.bucket,
        "prefix": job.route.prefix,
        "to": job.plan.target,
        "shard": str(job.shard),
    }


def run_migrate(
    client: Any,
    job: MigrateJob,
    *,
    out: TextIO,
    progress: Progress,
    stop: threading.Event | None = None,
    before_write: Callable[[str], None] | None = None,
) -> Summary:
    stop = stop or threading.Event()
    plan = job.plan
    state: StateFile | NoState = (
        StateFile(job.state_path, _header(job))
        if job.state_path is not None and not plan.dry_run
        else NoState()
    )
    summary = Summary(dry_run=plan.dry_run)
    lock = threading.Lock()
    try:
        for upload_id, key in state.resumed.open_uploads.items():
            abort_upload(client, plan.bucket, key, upload_id)
            state.record({"upload_done": upload_id, "aborted": True})
        rewriter = Rewriter(client, plan, state, before_write=before_write)
        done = state.resumed.done

        def job_for(ref: ObjectRef) -> None:
            if ref.key in done:
                result = Result("skipped", reason="done")
            else:
                result = rewriter.migrate(ref.key)
                if not plan.dry_run and result.outcome != "failed":
                    state.record({"key": ref.key, "outcome": result.outcome, "why": result.reason})
            with lock:
                setattr(summary, result.outcome, getattr(summary, result.outcome) + 1)
                summary.conflict += result.conflicts
                summary.bytes += result.nbytes
                if result.outcome == "failed":
                    out.write(json.dumps(result.failure(ref.key), ensure_ascii=False) + "\n")
                    out.flush()
            progress.add(result.outcome, result.nbytes)

        count_in_background(lambda: keys_of(client, job.route, job.shard, job.manifest), progress)
        for_each(
            keys_of(client, job.route, job.shard, job.manifest),
            job_for,
            concurrency=job.concurrency,
            stop=stop,
        )
        summary.interrupted = stop.is_set()
    finally:
        state.close()
    return summary
