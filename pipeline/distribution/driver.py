"""Distributed rendering: long-lived render workers, exactly-once shards, bounded retries.

How a dataset gets rendered (`render_dataset`):

1. The driver cuts samples `0 .. N-1` into shards (pipeline.distribution.shards) and, when resuming, drops the shards that
   `manifest.jsonl` lists and whose samples are all complete on disk.
2. Workers are started: Ray actors (one Blender each, `num_cpus = threads`) or, in local mode, one worker in
   the driver process. A `ShardWorker` parses gin once and keeps one `render.dataset.DatasetRenderer` (one
   Blender scene) for every shard it gets; a `ProcessShardWorker` instead launches one `render.py` process
   per shard (a stock `blender --background --python render.py`, or the original one-process-per-batch
   design the benchmark compares with).
3. Workers get the next shard (with `queue_depth` 2 a Ray worker holds a second one while it renders the first,
   while at least one more shard per worker stays pending). A shard attempt that raises or
   whose worker dies (SIGKILL, OOM) costs that worker its life: it is killed, its log under `DATA_DIR/NAME/logs/`
   is kept, and the shard goes back to the queue for a fresh worker, at most `retries` times; a shard that was
   only waiting on that worker goes back without using an attempt. Samples are published atomically by
   DatasetRenderer, so a retry renders only the samples still missing.
4. When an attempt returns, the driver checks on disk that every sample of the shard is complete and only
   then appends the shard's manifest line. The driver is the manifest's only writer.
5. Workers are recycled (stopped and replaced) after `recycle_after` samples or when their resident memory
   passes `max_rss_mb`.

Test hook (kept in the product, see docs/distributed.md): the environment variable `NSD_FAULT`, read by the
driver and handed to in-process workers, injects faults at given sample indices:
`kill@7` (the worker SIGKILLs itself before rendering sample 7, once per dataset), `raise@7` (raises once),
`raise-always@7` (raises every time), `pause@7` (sleeps an hour, once). Several are separated by commas.
"""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.distribution import manifest as manifest_io
from pipeline.distribution.progress import SampleProgress, Throughput
from pipeline.distribution.shards import Shard, plan_shards

logger = logging.getLogger(__name__)

FAULT_ENV = "NSD_FAULT"
REPO_DIR = Path(__file__).resolve().parent.parent
RENDER_SCRIPT = REPO_DIR / "render.py"


class FatalRenderError(RuntimeError):
    """A problem no retry can fix (bad gin config, dataset made with another config, missing assets)."""


class DatasetExistsError(FileExistsError):
    """The dataset folder is not empty and the run was not asked to continue it."""


class WorkerFailure(RuntimeError):
    """A shard attempt failed: the worker raised or died. `log_path` holds its output."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


class InjectedFault(RuntimeError):
    """Raised by the `NSD_FAULT=raise@I` test hook."""


# ------------------------------------------------------------------------------------------ job description
@dataclass(frozen=True)
class RenderJob:
    """Everything a worker needs to render shards of one dataset.

    Attributes:
        dataset_dir: `DATA_DIR/NAME`.
        gin_files: gin files (absolute paths, or names in `config_dir`).
        bindings: gin bindings applied after the files.
        config_dir: folder gin `include`s are resolved against.
        threads: Cycles threads per worker (recorded in sidecars and the manifest).
        launcher: None renders in-process with the bpy module; otherwise the command prefix that runs
            `render.py` in a fresh process per shard, e.g. `("/usr/bin/blender", "--background",
            "--factory-startup", "--python")` or `(sys.executable,)`.
        fault: `NSD_FAULT` test-hook spec (in-process workers only), or None.
    """

    dataset_dir: Path
    gin_files: tuple[str, ...]
    bindings: tuple[str, ...]
    config_dir: Path
    threads: int = 1
    launcher: tuple[str, ...] | None = None
    fault: str | None = None

    @property
    def name(self) -> str:
        return self.dataset_dir.name

    @property
    def log_dir(self) -> Path:
        return self.dataset_dir / "logs"


@dataclass(frozen=True)
class RunOptions:
    """How the driver runs a job.

    Attributes:
        workers: workers at once; None = every CPU of the cluster divided by the job's threads.
        retries: extra attempts a failed shard gets, each on a fresh worker.
        local: render in the driver process (one worker, no Ray).
        resume: continue an existing dataset (`-c`); without it a non-empty dataset folder is refused.
        recycle_after: samples after which a worker is replaced (bounds leaks in long Blender sessions).
        max_rss_mb: resident memory (MiB) above which a worker is replaced after its current shard.
        progress: draw a tqdm bar.
        poll_seconds: how often the driver looks at the disk to move the bar while shards run.
        queue_depth: shards a Ray worker holds at once. With 2 the next shard waits on the worker and starts the
            moment the current one returns, hiding the driver's round trip (result check on disk, manifest fsync,
            next submit), which pays where that trip is slow (a driver on another node, a manifest on network
            storage). On a 2-core machine it gave 1 worker 0-8% more and 2 workers +1% to -13% (docs/distributed.md).
    """

    workers: int | None = None
    retries: int = 2
    local: bool = False
    resume: bool = False
    recycle_after: int = 1000
    max_rss_mb: float = 4096.0
    progress: bool = True
    poll_seconds: float = 0.5
    queue_depth: int = 1


@dataclass
class ShardResult:
    """What a worker reports for a finished shard attempt.

    Attributes:
        shard_id: the shard.
        rendered: samples this attempt rendered (the others were complete already).
        seconds: wall time of the attempt, worker start-up excluded.
        setup_seconds: worker start-up (gin, Blender scene) paid before this attempt (0 after the first).
        render_call_seconds: time inside Cycles' render calls.
        seed, config_hash, blender_version, threads: what the manifest line records.
        node: Ray node id of the worker ("local" without Ray).
        pid: worker process id.
        rss_mb: the worker's resident memory after the shard (MiB).
        worker_rendered: samples the worker rendered since it started (for recycling).
        timings: BlenderScene.timings spent in this attempt (build, render_call, write, clear).
        finished_at: when the attempt ended, on the worker's clock (epoch seconds).
    """

    shard_id: int
    rendered: int
    seconds: float
    setup_seconds: float
    render_call_seconds: float
    seed: int
    config_hash: str
    blender_version: str
    threads: int
    node: str
    pid: int
    rss_mb: float
    worker_rendered: int
    timings: dict[str, float] = field(default_factory=dict)
    finished_at: float = 0.0


# ----------------------------------------------------------------------------------------------- fault hook
@dataclass(frozen=True)
class Fault:
    """One injected fault: `action` before rendering sample `index` (see the module docstring)."""

    action: str
    index: int
    always: bool = False

    def fire(self, marker_dir: Path, log_path: Path) -> None:
        """Acts out the fault (once per dataset unless `always`); notes it in `log_path` first."""
        if not self.always:
            marker_dir.mkdir(parents=True, exist_ok=True)
            try:  # O_EXCL: exactly one process across workers and retries fires a once-fault
                os.close(os.open(marker_dir / f".fault-{self.action}-{self.index:06d}", os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
        message = f"NSD_FAULT: {self.action} at sample {self.index} (pid {os.getpid()})"
        logger.warning(message)
        _append_log(log_path, message + "\n")
        if self.action == "kill":
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.action == "raise":
            raise InjectedFault(f"NSD_FAULT injected an exception at sample {self.index}")
        elif self.action == "pause":
            time.sleep(3600)
        else:
            raise ValueError(f"unknown fault action {self.action!r}")


def parse_faults(spec: str | None) -> dict[int, Fault]:
    """Parses an `NSD_FAULT` value such as `kill@7,raise-always@12` into {sample index: Fault}.

    Raises:
        ValueError: a malformed item; the message shows the accepted forms.
    """
    faults: dict[int, Fault] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        action, _, index = item.partition("@")
        always = action.endswith("-always")
        action = action.removesuffix("-always")
        if action not in ("kill", "raise", "pause") or not index.isdigit() or (always and action != "raise"):
            raise ValueError(f"{FAULT_ENV}={spec!r}: bad item {item!r}; use kill@I, raise@I, raise-always@I or "
                             "pause@I, separated by commas")
        faults[int(index)] = Fault(action, int(index), always)
    return faults


# ---------------------------------------------------------------------------------------------- workers
def _node_id() -> str:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return "local"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _append_log(log_path: Path, text: str) -> None:
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(text)


class ShardWorker:
    """Renders shards in this process with one long-lived DatasetRenderer (one Blender scene).

    Args:
        job: the dataset to render.
        worker_id: number used in log messages.
        log_path: file receiving Blender's output and the traceback of a failed shard.
        capture_output: point this process's stdout and stderr (fds 1 and 2) at `log_path` for good; used in
            Ray actors, so a crash message ends up in the log too. Never in the driver process.
    """

    def __init__(self, job: RenderJob, worker_id: int, log_path: Path, capture_output: bool = False) -> None:
        self.job = job
        self.worker_id = worker_id
        self.log_path = Path(log_path)
        self.capture_output = capture_output
        self.faults = parse_faults(job.fault)
        self._renderer = None
        self._setup_seconds = 0.0

    def _setup(self) -> None:
        start = time.perf_counter()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.capture_output:
            sys.stdout.flush()
            sys.stderr.flush()
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        _append_log(self.log_path, f"== worker {self.worker_id}: pid {os.getpid()} on {socket.gethostname()}, "
                                   f"node {_node_id()}, threads {self.job.threads}\n")
        from render import generators  # noqa: F401  (registers the generators with gin)
        from render.catalogue import AssetError
        from render.gin_setup import ConfigError, parse_gin

        try:
            parse_gin(list(self.job.gin_files), list(self.job.bindings), Path(self.job.config_dir))
            from render.blender_threads import load_blender

            load_blender(self.job.threads)
            from render.dataset import DatasetMismatchError, DatasetRenderer

            renderer = DatasetRenderer(self.job.dataset_dir, threads=self.job.threads, log_path=self.log_path)
            try:
                renderer.prepare()
            except BaseException:
                renderer.close()
                raise
        except (ConfigError, DatasetMismatchError, AssetError, ValueError) as err:
            _append_log(self.log_path, traceback.format_exc())
            raise FatalRenderError(f"{type(err).__name__}: {err}") from None
        self._renderer = renderer
        self._setup_seconds = time.perf_counter() - start

    def render_shard(self, shard: Shard) -> ShardResult:
        """Renders the missing samples of `shard`; raises whatever went wrong (the traceback goes to the log)."""
        if self._renderer is None:
            self._setup()
        from render import compat

        renderer = self._renderer
        start = time.perf_counter()
        timings_before = dict(renderer.scene.timings)
        rendered_before = renderer.rendered
        _append_log(self.log_path, f"== {shard.describe()}\n")
        try:
            for index in shard.indices:
                fault = self.faults.get(index)
                if fault is not None and not renderer.is_complete(index):
                    fault.fire(self.job.log_dir, self.log_path)
                renderer.render_sample(index)
        except Exception:
            _append_log(self.log_path, traceback.format_exc())
            raise
        setup_seconds, self._setup_seconds = self._setup_seconds, 0.0
        return ShardResult(
            shard_id=shard.shard_id,
            rendered=renderer.rendered - rendered_before,
            seconds=time.perf_counter() - start,
            setup_seconds=setup_seconds,
            render_call_seconds=renderer.scene.timings["render_call"] - timings_before.get("render_call", 0.0),
            seed=renderer.settings.seed,
            config_hash=renderer.config_hash,
            blender_version=compat.VERSION_STRING,
            threads=renderer.threads,
            node=_node_id(),
            pid=os.getpid(),
            rss_mb=_rss_mb(),
            worker_rendered=renderer.rendered,
            timings={k: v - timings_before.get(k, 0.0) for k, v in renderer.scene.timings.items()},
            finished_at=time.time(),
        )

    def close(self) -> None:
        """Frees the renderer's scratch folder."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class ProcessShardWorker:
    """Renders each shard in a fresh `render.py` process (a stock Blender, or `python render.py`).

    Args:
        job: the dataset; `job.launcher` is the command prefix before `render.py`.
        worker_id: number used in log messages.
        log_path: file receiving the processes' stdout and stderr.
        capture_output: unused (the child's output always goes to `log_path`); kept for a uniform signature.
    """

    def __init__(self, job: RenderJob, worker_id: int, log_path: Path, capture_output: bool = False) -> None:
        if not job.launcher:
            raise ValueError("ProcessShardWorker needs job.launcher (e.g. a Blender binary)")
        self.job = job
        self.worker_id = worker_id
        self.log_path = Path(log_path)
        self.rendered = 0

    def command(self, shard: Shard) -> list[str]:
        """The command line rendering `shard`."""
        job = self.job
        cmd = [*job.launcher, str(RENDER_SCRIPT), "--", "-d", job.name, "--data_dir", str(job.dataset_dir.parent),
               "--start", str(shard.start), "--count", str(shard.count), "--threads", str(job.threads), "-v"]
        for gin_file in job.gin_files:
            cmd += ["-g", gin_file]
        for binding in job.bindings:
            cmd += ["-p", binding]
        return cmd

    def render_shard(self, shard: Shard) -> ShardResult:
        """Runs one render.py process for `shard`; raises WorkerFailure when it exits non-zero."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        samples_dir = self.job.dataset_dir / "samples"
        missing_before = [i for i in shard.indices if not (samples_dir / f"{i:06d}" / "sample.json").is_file()]
        cmd = self.command(shard)
        _append_log(self.log_path, f"== {shard.describe()}: {' '.join(cmd)}\n")
        env = {**os.environ, "CONFIG_DIR": str(self.job.config_dir)}
        start = time.perf_counter()
        with open(self.log_path, "ab") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_DIR, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise WorkerFailure(f"{cmd[0]} exited with code {proc.returncode}", self.log_path)
        rendered = sum((samples_dir / f"{i:06d}" / "sample.json").is_file() for i in missing_before)
        self.rendered += rendered
        info = json.loads((self.job.dataset_dir / "dataset.json").read_text())
        sidecar = json.loads((samples_dir / f"{shard.start:06d}" / "sample.json").read_text())
        return ShardResult(
            shard_id=shard.shard_id, rendered=rendered, seconds=seconds, setup_seconds=0.0,
            render_call_seconds=0.0, seed=int(info["seed"]), config_hash=str(info["config_hash"]),
            blender_version=str(sidecar["blender_version"]), threads=int(sidecar["threads"]), node=_node_id(),
            pid=os.getpid(), rss_mb=_rss_mb(), worker_rendered=self.rendered, finished_at=time.time(),
        )

    def close(self) -> None:
        """Nothing to free: every shard had its own process."""


# --------------------------------------------------------------------------------------------- executors
class _Executor(Protocol):
    """Starts workers and runs shard attempts on them (in-process or on Ray).

    `queues` says whether a worker may hold several attempts at once (Ray actors run theirs in submission order);
    the in-process executor does the work inside `submit`, so it never does.
    """

    queues: bool

    def start(self, worker_id: int, log_path: Path) -> Any: ...
    def submit(self, worker: Any, shard: Shard) -> Any: ...
    def wait(self, tickets: list[Any], timeout: float) -> list[Any]: ...
    def outcome(self, ticket: Any, log_path: Path) -> ShardResult: ...
    def stop(self, worker: Any, graceful: bool) -> None: ...


def _worker_class(job: RenderJob) -> type:
    return ProcessShardWorker if job.launcher else ShardWorker


class _Done:
    """Outcome of an in-process attempt ("ok", "fatal" or "error" and the result or exception); hashed by identity."""

    def __init__(self, kind: str, value: Any) -> None:
        self.kind, self.value = kind, value


class LocalExecutor:
    """Runs shard attempts in the driver process, one at a time; `submit` does the work."""

    queues = False

    def __init__(self, job: RenderJob) -> None:
        self.job = job

    def start(self, worker_id: int, log_path: Path) -> Any:
        return _worker_class(self.job)(self.job, worker_id, log_path, capture_output=False)

    def submit(self, worker: Any, shard: Shard) -> Any:
        try:
            return _Done("ok", worker.render_shard(shard))
        except FatalRenderError as err:
            return _Done("fatal", err)
        except Exception as err:  # any failure of one attempt is retried on a fresh worker
            return _Done("error", err)

    def wait(self, tickets: list[Any], timeout: float) -> list[Any]:
        return list(tickets)

    def outcome(self, ticket: Any, log_path: Path) -> ShardResult:
        kind, value = ticket.kind, ticket.value
        if kind == "ok":
            return value
        if kind == "fatal":
            raise value
        if isinstance(value, WorkerFailure):
            raise value
        raise WorkerFailure(f"{type(value).__name__}: {value}", log_path) from value

    def stop(self, worker: Any, graceful: bool) -> None:
        worker.close()


class RayExecutor:
    """Runs shard attempts on Ray actors (one worker process each, `num_cpus = job.threads`)."""

    queues = True

    def __init__(self, job: RenderJob) -> None:
        import ray

        self.ray = ray
        self.job = job
        self._actor_class = ray.remote(_worker_class(job))

    def start(self, worker_id: int, log_path: Path) -> Any:
        return self._actor_class.options(num_cpus=self.job.threads, max_restarts=0, max_task_retries=0).remote(
            self.job, worker_id, log_path, capture_output=True)

    def submit(self, worker: Any, shard: Shard) -> Any:
        return worker.render_shard.remote(shard)

    def wait(self, tickets: list[Any], timeout: float) -> list[Any]:
        ready, _ = self.ray.wait(tickets, num_returns=1, timeout=timeout)
        if ready:  # collect everything else that is ready too, without waiting again
            more, _ = self.ray.wait([t for t in tickets if t not in ready], num_returns=len(tickets) - len(ready),
                                    timeout=0)
            ready += more
        return ready

    def outcome(self, ticket: Any, log_path: Path) -> ShardResult:
        ray = self.ray
        try:
            return ray.get(ticket)
        except ray.exceptions.RayActorError as err:
            raise WorkerFailure(f"worker died ({_first_line(err)})", log_path) from None
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None) or err
            if isinstance(cause, FatalRenderError):
                raise FatalRenderError(str(cause)) from None
            if isinstance(cause, WorkerFailure):
                raise WorkerFailure(str(cause), log_path) from None
            raise WorkerFailure(f"{type(cause).__name__}: {_first_line(cause)}", log_path) from None

    def stop(self, worker: Any, graceful: bool) -> None:
        ray = self.ray
        if graceful:
            try:
                ray.get(worker.close.remote(), timeout=60)
            except (ray.exceptions.RayError, TimeoutError) as err:
                logger.warning("worker did not close cleanly: %s", _first_line(err))
        ray.kill(worker, no_restart=True)


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


# ------------------------------------------------------------------------------------------------ driver
def sample_complete(dataset_dir: Path, index: int) -> bool:
    """Whether sample `index` is published (its folder holds a sidecar; see render.dataset)."""
    return (dataset_dir / "samples" / f"{index:06d}" / "sample.json").is_file()


def is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def cluster_worker_slots(threads: int) -> int | None:
    """Workers of `threads` CPUs that the connected Ray cluster fits at once; None without a Ray connection."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)


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
    for entry in entries:
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
        missing = [i for i in entry.samples if not sample_complete(job.dataset_dir, i)]
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


@dataclass
class _Attempts:
    count: dict[int, int] = field(default_factory=dict)
    logs: dict[int, list[Path | None]] = field(default_factory=dict)


def render_dataset(job: RenderJob, num_samples: int, shard_size: int, options: RunOptions,
                   executor_factory: Callable[[RenderJob], _Executor] | None = None) -> Throughput:
    """Renders samples `0 .. num_samples - 1` of `job`'s dataset, each shard exactly once (see module docstring).

    Ray must already be initialised unless `options.local` is set.

    Returns:
        What the run did; `failures` is non-empty when shards still failed after their retries.

    Raises:
        DatasetExistsError: the folder is not empty and `options.resume` is False.
        ManifestError: the manifest does not fit this plan.
        FatalRenderError: the configuration cannot render (bad gin, another dataset in the folder, assets).
    """
    stats = Throughput(name=job.name)
    shards = plan_shards(num_samples, shard_size)
    if is_nonempty_dir(job.dataset_dir) and not options.resume:
        raise DatasetExistsError(
            f"{job.dataset_dir} already holds files; pass -c to continue that dataset, or pick another -d NAME "
            "(or delete the folder)")
    job.dataset_dir.mkdir(parents=True, exist_ok=True)
    finished = _reconcile_manifest(job, shards)
    todo = [s for s in shards if s.shard_id not in finished]
    complete = {i for s in shards for i in s.indices if sample_complete(job.dataset_dir, i)}
    stats.samples, stats.already, stats.shards_skipped = num_samples, len(complete), len(shards) - len(todo)
    if finished:
        logger.info("%s: %d of %d shards already finished (manifest)", job.name, len(finished), len(shards))
    if not todo:
        stats.stop_clock()
        return stats

    fit = None if options.local else cluster_worker_slots(job.threads)
    n_workers = 1 if options.local else (options.workers or fit or 1)
    if fit is not None and n_workers > fit:
        logger.warning("%d workers of %d threads asked for but the cluster has room for %d at once; the others wait "
                       "for CPUs", n_workers, job.threads, fit)
    n_workers = min(n_workers, len(todo))
    stats.workers = n_workers
    executor = (executor_factory or (LocalExecutor if options.local else RayExecutor))(job)
    run_tag = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    manifest_file = manifest_io.manifest_path(job.dataset_dir)
    pending: deque[Shard] = deque(todo)
    attempts = _Attempts()
    slots: list[_WorkerSlot] = []
    in_flight: dict[Any, _Attempt] = {}
    done_samples = set(complete)
    next_worker_id = 0
    progress = SampleProgress(job.name, num_samples, len(complete), enabled=options.progress)
    depth = max(1, options.queue_depth) if executor.queues else 1

    def retire(slot: _WorkerSlot, graceful: bool) -> None:
        slots.remove(slot)
        # attempts still queued on the worker go back to the front, in order, without using an attempt
        requeued = [in_flight.pop(ticket).shard for ticket in slot.queue]
        for shard in requeued:
            attempts.count[shard.shard_id] -= 1
        pending.extendleft(reversed(requeued))
        slot.queue.clear()
        try:
            executor.stop(slot.handle, graceful)
        finally:
            if not slot.failed:
                slot.log_path.unlink(missing_ok=True)

    def fill(slot: _WorkerSlot, depth: int, keep: int) -> None:
        """Queues shards on `slot` up to `depth`, leaving at least `keep` shards pending."""
        while len(pending) > keep and not slot.retiring and len(slot.queue) < depth:
            shard = pending.popleft()
            attempts.count[shard.shard_id] = attempts.count.get(shard.shard_id, 0) + 1
            ticket = executor.submit(slot.handle, shard)
            in_flight[ticket] = _Attempt(slot, shard)
            slot.queue.append(ticket)

    try:
        while pending or in_flight:
            idle = sum(1 for slot in slots if not slot.queue and not slot.retiring)
            while len(pending) > idle and len(slots) < n_workers:
                log_path = job.log_dir / f"{run_tag}-worker{next_worker_id:03d}.log"
                job.log_dir.mkdir(parents=True, exist_ok=True)
                slots.append(_WorkerSlot(executor.start(next_worker_id, log_path), next_worker_id, log_path))
                next_worker_id += 1
                idle += 1
                stats.workers_started += 1
            for slot in list(slots):
                fill(slot, 1, keep=0)
            # a second shard waits on a worker only while one shard per worker stays pending besides it: the
            # last shards go to whichever worker frees up first, never behind a slow (or stalled) one
            for slot in list(slots):
                fill(slot, depth, keep=len(slots))
            ready = set(executor.wait(list(in_flight), options.poll_seconds))
            for ticket in [t for t in in_flight if t in ready]:  # submission order: a worker's own order
                if ticket not in in_flight:  # requeued when its worker failed on an earlier attempt
                    continue
                slot, shard = in_flight[ticket].slot, in_flight[ticket].shard
                try:
                    result = executor.outcome(ticket, slot.log_path)
                    missing = [i for i in shard.indices if not sample_complete(job.dataset_dir, i)]
                    if missing:
                        raise WorkerFailure(
                            f"worker reported {shard.describe()} done but samples {missing[:5]} are not in "
                            f"{job.dataset_dir / 'samples'} as seen by the driver; on a cluster DATA_DIR must be "
                            "shared storage mounted at the same path on every node", slot.log_path)
                except FatalRenderError:
                    slot.failed = True  # keep its log: it holds the traceback
                    raise
                except WorkerFailure as failure:
                    # a worker runs its attempts in order, so the failed one is the oldest still in flight (Ray
                    # may report a dead worker's queued attempt before the running one); the others go back
                    culprit = slot.queue.pop(0)
                    shard = in_flight.pop(culprit).shard
                    slot.failed = True
                    retire(slot, graceful=False)
                    n = attempts.count[shard.shard_id]
                    reason = f"{failure} (log: {failure.log_path})"
                    attempts.logs.setdefault(shard.shard_id, []).append(failure.log_path)
                    if n <= options.retries:
                        stats.retries += 1
                        logger.warning("%s: %s attempt %d failed: %s; retrying on a fresh worker",
                                       job.name, shard.describe(), n, reason)
                        pending.append(shard)
                    else:
                        logger.error("%s: %s failed %d times; giving up: %s", job.name, shard.describe(), n, reason)
                        logs = ", ".join(str(p) for p in attempts.logs[shard.shard_id])
                        stats.failures.append(f"{shard.describe()} failed after {n} attempts, last: {failure}; logs: {logs}")
                    continue
                del in_flight[ticket]
                slot.queue.remove(ticket)
                manifest_io.append(manifest_file, manifest_io.ManifestEntry(
                    shard=shard.shard_id, samples=shard.indices, seed=result.seed, config_hash=result.config_hash,
                    blender_version=result.blender_version, threads=result.threads,
                    attempts=attempts.count[shard.shard_id], node=result.node, seconds=result.seconds))
                stats.shards_done += 1
                stats.render_call_seconds += result.render_call_seconds
                stats.worker_seconds += result.seconds
                stats.setup_seconds += result.setup_seconds
                for key, value in result.timings.items():
                    stats.timings[key] = stats.timings.get(key, 0.0) + value
                if slot.last_finished is not None:  # the worker's wait for the driver between two shards
                    stats.between_shards_seconds += max(0.0, result.finished_at - result.seconds
                                                        - slot.last_finished)
                    stats.between_shards += 1
                slot.last_finished = result.finished_at
                done_samples.update(shard.indices)
                if not slot.retiring and (result.worker_rendered >= options.recycle_after
                                          or result.rss_mb > options.max_rss_mb):
                    logger.info("recycling worker %d after %d samples (RSS %.0f MiB)", slot.worker_id,
                                result.worker_rendered, result.rss_mb)
                    slot.retiring = True
                if slot.retiring and not slot.queue:
                    retire(slot, graceful=True)
            for slot in list(slots):  # nothing left to hand out: idle workers stop (a retry starts a fresh one)
                if not pending and not slot.queue:
                    retire(slot, graceful=True)
            running = sum(sample_complete(job.dataset_dir, i) for a in in_flight.values()
                          for i in a.shard.indices if i not in done_samples)
            progress.update_to(len(done_samples) + running)
            progress.note(busy=len({id(a.slot) for a in in_flight.values()}), retries=stats.retries,
                          failed=len(stats.failures))
    finally:
        progress.close()
        for slot in list(slots):  # idle ones close; busy ones only after an error in the driver itself
            slot.failed = slot.failed or bool(slot.queue)
            retire(slot, graceful=not slot.queue)
        _remove_empty_log_dir(job)
    stats.rendered = sum(sample_complete(job.dataset_dir, i) for s in shards for i in s.indices) - len(complete)
    stats.stop_clock()
    return stats


def _remove_empty_log_dir(job: RenderJob) -> None:
    """Removes the logs folder when the run left nothing in it (no failed attempt, no fault marker)."""
    log_dir = job.log_dir
    if log_dir.is_dir() and not any(log_dir.iterdir()):
        shutil.rmtree(log_dir, ignore_errors=True)

