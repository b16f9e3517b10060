"""The shard driver: long-lived render workers, exactly-once shards, bounded retries.

How a dataset gets rendered (`render_dataset`):

1. The driver cuts samples `0 .. N-1` into shards (pipeline.distribution.shards) and, when resuming, drops the
   shards that `manifest.jsonl` lists and whose samples are all complete on disk (`_reconcile_manifest`).
2. Workers are started (`_ShardRun.start_workers`): Ray actors (one Blender each, `num_cpus = threads`) or, in
   local mode, one worker in the driver process (pipeline.distribution.executors, .workers).
3. Workers get the next shard (`_ShardRun.hand_out`; with `queue_depth` 2 a Ray worker holds a second one while
   it renders the first, while at least one more shard per worker stays pending). A shard attempt that raises
   or whose worker dies (SIGKILL, OOM) costs that worker its life (`_ShardRun.failed`): it is killed, its log
   under `DATA_DIR/NAME/logs/` is kept, and the shard goes back to the queue for a fresh worker, at most
   `retries` times; a shard that was only waiting on that worker goes back without using an attempt. Samples
   are published atomically by the renderer, so a retry renders only the samples still missing.
4. When an attempt returns, the driver checks on disk that every sample of the shard is complete and only then
   appends the shard's manifest line (`_ShardRun.finished`). The driver is the manifest's only writer.
5. Workers are recycled (stopped and replaced) after `recycle_after` samples or when their resident memory
   passes `max_rss_mb`.
6. With rows on (`job.rows`, the default) each attempt also publishes the shard's HDF5 rows
   (`rows/shard-XXXXX.h5`, pipeline.layouts.farm_rows) and its manifest line records them; the driver rewrites
   the virtual split files over every listed shard (pipeline.layouts.virtual) at most every `publish_every`
   seconds while shards finish and once when the run ends, so a trainer can read the dataset while it renders.
"""

import logging
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.layout import DATASET_JSON, read_dataset_json
from core.lock import LOCK_NAME, DatasetLock
from core.publish import remove_dead_debris
from core.samples import SAMPLES, is_complete
from pipeline.distribution import manifest as manifest_io
from pipeline.distribution.executors import Executor, LocalExecutor, RayExecutor
from pipeline.distribution.job import (
    DatasetExistsError,
    FatalRenderError,
    RenderJob,
    RunOptions,
    ShardResult,
    WorkerFailure,
)
from pipeline.distribution.progress import SampleProgress, Throughput
from pipeline.distribution.shards import Shard, plan_shards
from pipeline.layouts import farm_rows, virtual
from render.identity import mismatches

logger = logging.getLogger(__name__)


def is_nonempty_dir(path: Path) -> bool:
    """Whether `path` is a folder holding anything besides its writer lock."""
    return path.is_dir() and any(p.name != LOCK_NAME for p in path.iterdir())


def cluster_worker_slots(threads: int) -> int | None:
    """Workers of `threads` CPUs that the connected Ray cluster fits at once; None without a Ray connection."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)


def _check_dataset_json(job: RenderJob) -> None:
    """Reads dataset.json when present, even when every shard is finished: a corrupt one, or one of another
    config or seed, ends the run naming it (the workers check the rest of the identity when they start).

    Raises:
        LayoutError: dataset.json is not readable JSON.
        FatalRenderError: it names another config or seed.
    """
    if not (job.dataset_dir / DATASET_JSON).exists():
        return
    differ = mismatches(job.identity, read_dataset_json(job.dataset_dir))
    if differ:
        raise FatalRenderError(
            f"{job.dataset_dir / DATASET_JSON} describes another dataset ({'; '.join(differ)}); continue with the "
            "config that started it, or render into another -d NAME")


def _reconcile_manifest(job: RenderJob, shards: list[Shard]) -> set[int]:
    """Checks the manifest against the plan; returns the ids of shards that are finished.

    Shards listed in the manifest whose samples are not all complete on disk are dropped from it (and get
    rendered again, only their missing samples); a torn last line is cut off.

    Raises:
        ManifestError: a manifest shard covers other samples than the same shard of this plan.
    """
    path = manifest_io.manifest_path(job.dataset_dir)
    if not path.exists():
        return set()
    entries = manifest_io.load(path)
    by_id = {s.shard_id: s for s in shards}
    keep, finished = [], set()
    for number, entry in enumerate(entries, start=1):
        differ = mismatches(job.identity, {"seed": entry.seed, "config_hash": entry.config_hash})
        if differ:
            raise manifest_io.ManifestError(
                f"{path}: entry {number} (shard {entry.shard}) was rendered differently from this run "
                f"({'; '.join(differ)}); continue with the config that started the dataset, or render into "
                "another -d NAME")
        planned = by_id.get(entry.shard)
        if planned is None:
            logger.info("manifest shard %d (samples %d-%d) is beyond this run's plan; left as it is",
                        entry.shard, entry.samples[0], entry.samples[-1])
            keep.append(entry)
            continue
        if entry.samples != planned.indices:
            raise manifest_io.ManifestError(
                f"{path}: shard {entry.shard} covers samples {entry.samples[0]}-{entry.samples[-1]} but this run plans "
                f"{planned.describe()}; continue with the -n and -b of the run that started the dataset")
        if job.rows and (entry.rows is None or not (job.dataset_dir / entry.rows["file"]).is_file()):
            logger.warning("manifest lists %s without its HDF5 rows; writing them (only samples still missing are "
                           "rendered)", planned.describe())
            continue
        missing = [i for i in entry.samples if not is_complete(job.dataset_dir, i)]
        if missing:
            logger.warning("manifest lists %s but %d of its samples are missing (%s...); rendering them again",
                           planned.describe(), len(missing), missing[:3])
            continue
        keep.append(entry)
        finished.add(entry.shard)
    if len(keep) != len(entries) or not path.read_bytes().endswith(b"\n"):
        manifest_io.rewrite(path, keep)
    return finished


@dataclass
class _WorkerSlot:
    handle: Any
    worker_id: int
    log_path: Path
    failed: bool = False
    retiring: bool = False  # gets no more shards; stopped once its queue is empty
    last_finished: float | None = None  # worker clock at the end of its last successful attempt
    queue: list[Any] = field(default_factory=list)  # tickets of its attempts, in submission order


@dataclass
class _Attempt:
    slot: _WorkerSlot
    shard: Shard


class _ShardRun:
    """The state of one run of the driver over the shards still to do, and the steps that move it on.

    Args:
        job: the dataset.
        todo: shards to render, in order.
        n_workers: workers at once.
        options: retries, recycling, queue depth, progress.
        executor: where attempts run.
        stats: filled in as shards finish.
        done_samples: samples complete before the run (grows as shards finish).
        num_samples: the dataset's size (for the progress bar).
    """

    def __init__(self, job: RenderJob, todo: list[Shard], n_workers: int, options: RunOptions, executor: Executor,
                 stats: Throughput, done_samples: set[int], num_samples: int) -> None:
        self.job, self.options, self.executor, self.stats = job, options, executor, stats
        self.n_workers = n_workers
        self.pending: deque[Shard] = deque(todo)
        self.attempts: dict[int, int] = {}  # shard id -> attempts started
        self.attempt_logs: dict[int, list[Path | None]] = {}
        self.slots: list[_WorkerSlot] = []
        self.in_flight: dict[Any, _Attempt] = {}  # insertion order = submission order
        self.done_samples = done_samples
        self.next_worker_id = 0
        self.depth = max(1, options.queue_depth) if executor.queues else 1
        self.run_tag = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}"
        self.manifest_file = manifest_io.manifest_path(job.dataset_dir)
        self.progress = SampleProgress(job.name, num_samples, len(done_samples), enabled=options.progress)
        self.last_published: float | None = None  # monotonic time of the last virtual split files

    # ------------------------------------------------------------------------------------------- the loop
    def run(self) -> None:
        """Renders every pending shard; stops every worker on the way out, whatever happened."""
        try:
            while self.pending or self.in_flight:
                self.start_workers()
                self.hand_out()
                ready = set(self.executor.wait(list(self.in_flight), self.options.poll_seconds))
                for ticket in [t for t in self.in_flight if t in ready]:  # submission order: a worker's own order
                    if ticket in self.in_flight:  # else requeued when its worker failed on an earlier attempt
                        self.collect(ticket)
                self.stop_idle_workers()
                self.show_progress()
        finally:
            self.progress.close()
            for slot in list(self.slots):  # idle ones close; busy ones only after an error in the driver itself
                slot.failed = slot.failed or bool(slot.queue)
                self.retire(slot, graceful=not slot.queue)

    def start_workers(self) -> None:
        """Starts workers while more shards are pending than idle workers could take, up to `n_workers`."""
        idle = sum(1 for slot in self.slots if not slot.queue and not slot.retiring)
        while len(self.pending) > idle and len(self.slots) < self.n_workers:
            log_path = self.job.log_dir / f"{self.run_tag}-worker{self.next_worker_id:03d}.log"
            self.job.log_dir.mkdir(parents=True, exist_ok=True)
            self.slots.append(_WorkerSlot(self.executor.start(self.next_worker_id, log_path), self.next_worker_id,
                                          log_path))
            self.next_worker_id += 1
            idle += 1
            self.stats.workers_started += 1

    def hand_out(self) -> None:
        """One shard to every worker without one; then a second to each while one per worker stays pending, so
        the last shards go to whichever worker frees up first, never behind a slow (or stalled) one."""
        for slot in list(self.slots):
            self._fill(slot, 1, keep=0)
        for slot in list(self.slots):
            self._fill(slot, self.depth, keep=len(self.slots))

    def _fill(self, slot: _WorkerSlot, depth: int, keep: int) -> None:
        """Queues shards on `slot` up to `depth`, leaving at least `keep` shards pending."""
        while len(self.pending) > keep and not slot.retiring and len(slot.queue) < depth:
            shard = self.pending.popleft()
            self.attempts[shard.shard_id] = self.attempts.get(shard.shard_id, 0) + 1
            ticket = self.executor.submit(slot.handle, shard)
            self.in_flight[ticket] = _Attempt(slot, shard)
            slot.queue.append(ticket)

    def collect(self, ticket: Any) -> None:
        """Takes the outcome of a finished attempt: a finished shard, or a failed worker."""
        slot, shard = self.in_flight[ticket].slot, self.in_flight[ticket].shard
        try:
            result = self.executor.outcome(ticket, slot.log_path)
            missing = [i for i in shard.indices if not is_complete(self.job.dataset_dir, i)]
            if missing:
                raise WorkerFailure(
                    f"worker reported {shard.describe()} done but samples {missing[:5]} are not in "
                    f"{self.job.dataset_dir / SAMPLES} as seen by the driver; on a cluster DATA_DIR must be "
                    "shared storage mounted at the same path on every node", slot.log_path)
            if result.rows is not None and not (self.job.dataset_dir / result.rows["file"]).is_file():
                raise WorkerFailure(f"worker reported the rows of {shard.describe()} published but "
                                    f"{self.job.dataset_dir / result.rows['file']} is not there as seen by the driver",
                                    slot.log_path)
        except FatalRenderError:
            slot.failed = True  # keep its log: it holds the traceback
            raise
        except WorkerFailure as failure:
            self.failed(slot, failure)
            return
        del self.in_flight[ticket]
        slot.queue.remove(ticket)
        self.finished(slot, shard, result)

    def finished(self, slot: _WorkerSlot, shard: Shard, result: ShardResult) -> None:
        """Records a shard whose samples are all on disk: its manifest line, the run's figures, recycling."""
        manifest_io.append(self.manifest_file, manifest_io.ManifestEntry(
            shard=shard.shard_id, samples=shard.indices, seed=result.seed, config_hash=result.config_hash,
            blender_version=result.blender_version, threads=result.threads,
            attempts=self.attempts[shard.shard_id], node=result.node, seconds=result.seconds, rows=result.rows))
        if result.rows is not None:
            if self.job.drop_raw:
                farm_rows.drop_raw_views(self.job.dataset_dir, shard.indices)
            if self.last_published is None or time.monotonic() - self.last_published >= self.options.publish_every:
                self.last_published = time.monotonic()
                publish_split_files(self.job)
        stats = self.stats
        stats.shards_done += 1
        stats.render_call_seconds += result.render_call_seconds
        stats.worker_seconds += result.seconds
        stats.setup_seconds += result.setup_seconds
        for key, value in result.timings.items():
            stats.timings[key] = stats.timings.get(key, 0.0) + value
        if slot.last_finished is not None:  # the worker's wait for the driver between two shards
            stats.between_shards_seconds += max(0.0, result.finished_at - result.seconds - slot.last_finished)
            stats.between_shards += 1
        slot.last_finished = result.finished_at
        self.done_samples.update(shard.indices)
        if not slot.retiring and (result.worker_rendered >= self.options.recycle_after
                                  or result.rss_mb > self.options.max_rss_mb):
            logger.info("recycling worker %d after %d samples (RSS %.0f MiB)", slot.worker_id,
                        result.worker_rendered, result.rss_mb)
            slot.retiring = True
        if slot.retiring and not slot.queue:
            self.retire(slot, graceful=True)

    def failed(self, slot: _WorkerSlot, failure: WorkerFailure) -> None:
        """A worker raised or died: it is stopped, and its oldest attempt is retried (or given up)."""
        # a worker runs its attempts in order, so the failed one is the oldest still in flight (Ray may report a
        # dead worker's queued attempt before the running one); the others go back without using an attempt
        culprit = slot.queue.pop(0)
        shard = self.in_flight.pop(culprit).shard
        slot.failed = True
        self.retire(slot, graceful=False)
        n = self.attempts[shard.shard_id]
        reason = f"{failure} (log: {failure.log_path})"
        self.attempt_logs.setdefault(shard.shard_id, []).append(failure.log_path)
        if n <= self.options.retries:
            self.stats.retries += 1
            logger.warning("%s: %s attempt %d failed: %s; retrying on a fresh worker",
                           self.job.name, shard.describe(), n, reason)
            self.pending.append(shard)
        else:
            logger.error("%s: %s failed %d times; giving up: %s", self.job.name, shard.describe(), n, reason)
            logs = ", ".join(str(p) for p in self.attempt_logs[shard.shard_id])
            self.stats.failures.append(f"{shard.describe()} failed after {n} attempts, last: {failure}; logs: {logs}")

    def retire(self, slot: _WorkerSlot, graceful: bool) -> None:
        """Stops a worker; attempts still queued on it go back to the front, in order, without using an attempt."""
        self.slots.remove(slot)
        requeued = [self.in_flight.pop(ticket).shard for ticket in slot.queue]
        for shard in requeued:
            self.attempts[shard.shard_id] -= 1
        self.pending.extendleft(reversed(requeued))
        slot.queue.clear()
        try:
            self.executor.stop(slot.handle, graceful)
        finally:
            if not slot.failed:
                slot.log_path.unlink(missing_ok=True)

    def stop_idle_workers(self) -> None:
        """With nothing left to hand out, idle workers stop (a retry later starts a fresh one)."""
        for slot in list(self.slots):
            if not self.pending and not slot.queue:
                self.retire(slot, graceful=True)

    def show_progress(self) -> None:
        running = sum(is_complete(self.job.dataset_dir, i) for a in self.in_flight.values()
                      for i in a.shard.indices if i not in self.done_samples)
        self.progress.update_to(len(self.done_samples) + running)
        self.progress.note(busy=len({id(a.slot) for a in self.in_flight.values()}), retries=self.stats.retries,
                           failed=len(self.stats.failures))


def _worker_count(job: RenderJob, options: RunOptions, shards_to_do: int) -> int:
    """Workers for this run: the asked number, else what the cluster fits; never more than shards to do."""
    fit = None if options.local else cluster_worker_slots(job.threads)
    n_workers = 1 if options.local else (options.workers or fit or 1)
    if fit is not None and n_workers > fit:
        logger.warning("%d workers of %d threads asked for but the cluster has room for %d at once; the others wait "
                       "for CPUs", n_workers, job.threads, fit)
    return min(n_workers, shards_to_do)


def render_dataset(job: RenderJob, num_samples: int, shard_size: int, options: RunOptions,
                   executor_factory: Callable[[RenderJob], Executor] | None = None) -> Throughput:
    """Renders samples `0 .. num_samples - 1` of `job`'s dataset, each shard exactly once (see module docstring).

    Ray must already be initialised unless `options.local` is set.

    Returns:
        What the run did; `failures` is non-empty when shards still failed after their retries.

    Raises:
        DatasetLockedError: another writer holds the dataset folder (core.lock).
        DatasetExistsError: the folder is not empty and `options.resume` is False.
        ManifestError: the manifest does not fit this plan.
        FatalRenderError: the configuration cannot render (bad gin, another dataset in the folder, assets).
    """
    shards = plan_shards(num_samples, shard_size)
    with DatasetLock(job.dataset_dir, "distributed_render.py"):
        return _render_locked(job, shards, num_samples, options, executor_factory)


def _render_locked(job: RenderJob, shards: list[Shard], num_samples: int, options: RunOptions,
                   executor_factory: Callable[[RenderJob], Executor] | None) -> Throughput:
    stats = Throughput(name=job.name)
    if is_nonempty_dir(job.dataset_dir) and not options.resume:
        raise DatasetExistsError(
            f"{job.dataset_dir} already holds files; pass -c to continue that dataset, or pick another -d NAME "
            "(or delete the folder)")
    job.dataset_dir.mkdir(parents=True, exist_ok=True)
    _check_dataset_json(job)
    finished = _reconcile_manifest(job, shards)
    todo = [s for s in shards if s.shard_id not in finished]
    complete = {i for s in shards for i in s.indices if is_complete(job.dataset_dir, i)}
    stats.samples, stats.already, stats.shards_skipped = num_samples, len(complete), len(shards) - len(todo)
    if finished:
        logger.info("%s: %d of %d shards already finished (manifest)", job.name, len(finished), len(shards))
    if not todo:
        publish_split_files(job)
        stats.stop_clock()
        return stats
    stats.workers = _worker_count(job, options, len(todo))
    executor = (executor_factory or (LocalExecutor if options.local else RayExecutor))(job)
    try:
        _ShardRun(job, todo, stats.workers, options, executor, stats, set(complete), num_samples).run()
    finally:
        _remove_empty_log_dir(job)
    publish_split_files(job)
    stats.rendered = sum(is_complete(job.dataset_dir, i) for s in shards for i in s.indices) - len(complete)
    stats.stop_clock()
    return stats


def publish_split_files(job: RenderJob) -> dict[str, int]:
    """Rewrites the virtual split files over every shard the manifest lists with rows (none: nothing to do).

    Returns:
        split file name -> rows ({} when no shard has rows or the job writes none).

    Raises:
        FatalRenderError: the shards disagree (classes, image size) or dataset.json declares no layout.
    """
    if not job.rows:
        return {}
    # rows files of this machine's killed workers (a complete one may stand unlisted: it is replaced by the retry)
    remove_dead_debris(job.dataset_dir / farm_rows.ROWS_DIR)
    rows = virtual.manifest_rows(manifest_io.load(manifest_io.manifest_path(job.dataset_dir)))
    if not rows:
        return {}
    try:
        return virtual.publish_virtual(job.dataset_dir, rows)
    except ValueError as err:  # LayoutError is one
        raise FatalRenderError(f"writing the virtual split files of {job.name} failed: {err}") from None


def _remove_empty_log_dir(job: RenderJob) -> None:
    """Removes the logs folder when the run left nothing in it (no failed attempt, no fault marker)."""
    log_dir = job.log_dir
    if log_dir.is_dir() and not any(log_dir.iterdir()):
        shutil.rmtree(log_dir, ignore_errors=True)
