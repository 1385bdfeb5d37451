"""Running the videos' jobs, ``config.workers`` at a time; each finished video's record is written at once."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from usvid.data.extract.config import MAX_AUTO_WORKERS, ExtractConfig
from usvid.data.extract.frames import Scratch
from usvid.data.extract.job import VideoJob
from usvid.data.extract.progress import ExtractProgress, Progress
from usvid.data.extract.records import write_record
from usvid.data.extract.segments import SEGMENTS_PER_CORE, Cores
from usvid.data.sources import Failure, SourceItem
from usvid.errors import InputError, MissingDependencyError, ProcessingError

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """Raised inside a job when the extraction stops: before it starts (a ``strict`` failure) or while it runs
    (Ctrl-C, an error of the extraction itself)."""


def run_jobs(
    todo: list[tuple[int, SourceItem, str, str]],
    num_items: int,
    splits: dict[str, str],
    config: ExtractConfig,
    out: Path,
    notify: Progress,
    done: dict[int, dict],
) -> dict[int, Failure]:
    """Extract the ``todo`` videos, ``config.workers`` at a time; fills ``done`` with their records.

    Each finished video's record is written (atomically) as soon as it is done, so an interrupted run keeps
    every finished video. Returns the failures by item number. With ``strict``, the first failure starts no
    further video; the ones already running are finished, then it is raised. Ctrl-C stops the running videos
    at their next batch (their partial files are removed).
    """
    workers = min(config.workers or min(os.cpu_count() or 1, MAX_AUTO_WORKERS), len(todo)) or 1
    failed: dict[int, Failure] = {}
    no_more, abort = threading.Event(), threading.Event()
    started = itertools.count()
    scratch = Scratch()

    def run(n: int, item: SourceItem, file: str, inputs: str) -> None:
        if no_more.is_set():
            raise _Stopped
        # The last videos (fewer left than workers) are split into segments that take the cores the other
        # videos leave (segments.py), or else decode ahead on threads of their own.
        alone = workers == 1 or len(todo) - next(started) < workers

        def on_batch(frames_done: int, frames_total: int) -> None:
            if abort.is_set():
                raise _Stopped
            notify(ExtractProgress(item.video_id, n, num_items, frames_done, frames_total))

        job = VideoJob(item, splits[item.patient_id], config, out, file, 0 if alone else 1, scratch,
                       SEGMENTS_PER_CORE * cores.count if alone else 1, cores)
        try:
            with cores.job():
                made = job.run(on_batch)
        except (_Stopped, MissingDependencyError):
            raise
        except Exception as err:  # one broken video must not stop the others
            if config.strict:
                no_more.set()  # here, not in the caller: this worker's next video must not start
                raise
            if isinstance(err, (ProcessingError, InputError)):
                message = str(err)
            else:
                log.exception("%s: unexpected error", item.path)
                message = f"{type(err).__name__}: {err}"
            failed[n] = Failure(str(item.path), message.split(f"{item.path}: ", 1)[-1])
            log.warning("%s: %s", item.path, message)
            notify(ExtractProgress(item.video_id, n, num_items, 0, 0, finished=True, failed=True))
            return
        record = made.to_dict(inputs)
        write_record(out, file, record)
        done[n] = record
        frames = len(record["frames"])
        notify(ExtractProgress(item.video_id, n, num_items, frames, frames, finished=True))

    # Outside the videos' pool: it is shut down after them, so no video submits a segment to a closed pool.
    cpus = min(os.cpu_count() or 1, MAX_AUTO_WORKERS)
    with (
        ThreadPoolExecutor(max(1, workers * (cpus - 1)), thread_name_prefix="usvid-segment") as segment_pool,
        ThreadPoolExecutor(workers, thread_name_prefix="usvid-extract") as pool,
    ):
        cores = Cores(cpus, segment_pool)
        pending: set[Future] = {pool.submit(run, *job) for job in todo}
        first_error: BaseException | None = None
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    error = future.exception()
                    if error is not None and not isinstance(error, _Stopped) and first_error is None:
                        first_error = error
                        no_more.set()
        except BaseException:
            no_more.set()
            abort.set()  # running videos stop at their next batch and remove their partial files
            for future in pending:
                future.cancel()
            raise
    if first_error is not None:
        raise first_error
    return failed
