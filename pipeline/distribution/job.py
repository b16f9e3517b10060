"""What a distributed render is asked to do and what it reports: the job, the run options, a shard's result,
and the errors that end an attempt or a run."""

from dataclasses import dataclass, field
from pathlib import Path


class FatalRenderError(RuntimeError):
    """A problem no retry can fix (bad gin config, dataset made with another config, missing assets)."""


class DatasetExistsError(FileExistsError):
    """The dataset folder is not empty and the run was not asked to continue it."""


class WorkerFailure(RuntimeError):
    """A shard attempt failed: the worker raised or died. `log_path` holds its output."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


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
        identity: what every finished shard of the dataset must carry (render.identity keys the driver knows
            from the gin config: generator, seed, config_hash); a manifest line that disagrees is refused.
        rows: (distributed_render.py turns it on unless --no_rows) the worker writes each finished shard's HDF5 rows (`rows/shard-XXXXX.h5`,
            pipeline.layouts.farm_rows) and the driver keeps virtual split files over them (docs/distributed.md).
        drop_raw: delete a shard's view files once its rows are listed in the manifest (sidecars stay).
    """

    dataset_dir: Path
    gin_files: tuple[str, ...]
    bindings: tuple[str, ...]
    config_dir: Path
    threads: int = 1
    launcher: tuple[str, ...] | None = None
    fault: str | None = None
    identity: dict = field(default_factory=dict)
    rows: bool = False
    drop_raw: bool = False

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
        publish_every: seconds between two rewrites of the virtual split files while shards finish (0: after
            every shard); they are always rewritten when the run ends. Each rewrite reads the manifest and maps
            every listed shard, so on large runs it is rate-limited rather than done per shard.
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
    publish_every: float = 10.0


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
        timings: BlenderScene.timings spent in this attempt (build, render_call, write, clear), and "rows" when
            the worker wrote the shard's HDF5 rows.
        finished_at: when the attempt ended, on the worker's clock (epoch seconds).
        rows: what the shard's published rows file holds (pipeline.layouts.farm_rows.write_shard_rows), None
            when the job writes no rows.
        rows_seconds: time the attempt spent encoding and publishing the rows.
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
    rows: dict | None = None
    rows_seconds: float = 0.0


