"""Render workers: `ShardWorker` keeps one Blender scene for every shard it renders (in a Ray actor or the
driver process); `ProcessShardWorker` runs one `render.py` process per shard (a stock Blender, or the original
one-process-per-batch design the benchmark compares with)."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from core.layout import LayoutError
from core.lock import LOCK_ENV
from core.process import rss_mb
from core.samples import SIDECAR, is_complete, sample_dir
from pipeline.distribution.faults import append_log, parse_faults
from pipeline.distribution.job import FatalRenderError, RenderJob, ShardResult, WorkerFailure
from pipeline.distribution.shards import Shard
from pipeline.formats.hdf5 import DiskFullError
from pipeline.layouts.farm_rows import write_shard_rows

REPO_DIR = Path(__file__).resolve().parents[2]
RENDER_SCRIPT = REPO_DIR / "render.py"


def deterministic_failure(err: BaseException, dataset_dir: Path) -> str | None:
    """The one-line reason when `err` would fail every attempt the same way (never retried), else None.

    Deterministic: a bad gin value or binding, a missing asset, a mesh that fails to import, another
    dataset in the folder, a full disk. Anything else (a crash, a lost node) is transient and retried.
    """
    # Blender-side classes: this runs in a render worker, where bpy is loaded already
    from render.blender_scene import MeshImportError
    from render.catalogue import AssetError
    from render.dataset import DatasetMismatchError
    from render.gin_setup import ConfigError

    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        free = shutil.disk_usage(dataset_dir if dataset_dir.exists() else dataset_dir.parent).free
        where = err.filename or dataset_dir
        return (f"no space left on device writing {where} ({free} bytes free on {dataset_dir}'s file system); "
                "free some space (or point DATA_DIR elsewhere) and continue with -c")
    if isinstance(err, ConfigError | AssetError | MeshImportError | DatasetMismatchError | FatalRenderError):
        return f"{type(err).__name__}: {err}"
    return None


def write_rows(job: RenderJob, shard: Shard, faults: dict, log_path: Path) -> tuple[dict | None, float]:
    """Writes and publishes the HDF5 rows of a rendered shard when the job asks for them (job.rows).

    Returns:
        (what the manifest line records, seconds spent), or (None, 0.0) without rows.

    Raises:
        FatalRenderError: the dataset's layout cannot be written as rows (the same for every attempt).
    """
    if not job.rows:
        return None, 0.0
    def before_publish(tmp: Path) -> None:  # the NSD_FAULT hook: a worker killed with its rows half-published
        for index in shard.indices:
            fault = faults.get(index)
            if fault is not None and fault.action == "kill-rows":
                fault.fire(job.log_dir, log_path)

    start = time.perf_counter()
    try:
        rows = write_shard_rows(job.dataset_dir, shard.shard_id, shard.indices, before_publish)
    except DiskFullError as err:  # the same words as a full disk met while rendering (deterministic_failure)
        raise FatalRenderError(f"no space left on device writing {err.path} ({err.free} bytes free, about "
                               f"{err.needed} needed with HDF5's headroom); free some space (or point DATA_DIR "
                               "elsewhere) and continue with -c") from None
    except (LayoutError, ValueError) as err:
        append_log(log_path, traceback.format_exc())
        raise FatalRenderError(f"writing the HDF5 rows of {shard.describe()} failed: {err}; fix the dataset's "
                               "layout, or render without rows (--no_rows) and consolidate with preprocess_data.py "
                               "-f") from None
    return rows, time.perf_counter() - start


def node_id() -> str:
    """The Ray node id of this process, or "local" outside Ray."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return "local"


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
        append_log(self.log_path, f"== worker {self.worker_id}: pid {os.getpid()} on {socket.gethostname()}, "
                                   f"node {node_id()}, threads {self.job.threads}\n")
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
            append_log(self.log_path, traceback.format_exc())
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
        append_log(self.log_path, f"== {shard.describe()}\n")
        try:
            for index in shard.indices:
                fault = self.faults.get(index)
                if fault is not None and fault.action != "kill-rows" and not renderer.is_complete(index):
                    fault.fire(self.job.log_dir, self.log_path)
                renderer.render_sample(index)
            rows, rows_seconds = write_rows(self.job, shard, self.faults, self.log_path)
        except FatalRenderError:
            raise
        except Exception as err:
            append_log(self.log_path, traceback.format_exc())
            reason = deterministic_failure(err, self.job.dataset_dir)
            if reason is not None:  # a retry on a fresh worker would fail the same way
                raise FatalRenderError(reason) from None
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
            node=node_id(),
            pid=os.getpid(),
            rss_mb=rss_mb(),
            worker_rendered=renderer.rendered,
            timings={**{k: v - timings_before.get(k, 0.0) for k, v in renderer.scene.timings.items()},
                     **({"rows": rows_seconds} if rows is not None else {})},
            finished_at=time.time(),
            rows=rows,
            rows_seconds=rows_seconds,
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
        missing_before = [i for i in shard.indices if not is_complete(self.job.dataset_dir, i)]
        cmd = self.command(shard)
        append_log(self.log_path, f"== {shard.describe()}: {' '.join(cmd)}\n")
        # the child writes under the driver's dataset lock (core.lock), which it would otherwise be refused
        env = {**os.environ, "CONFIG_DIR": str(self.job.config_dir), LOCK_ENV: str(self.job.dataset_dir.resolve())}
        start = time.perf_counter()
        with open(self.log_path, "ab") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_DIR, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise WorkerFailure(f"{cmd[0]} exited with code {proc.returncode}", self.log_path)
        rendered = sum(is_complete(self.job.dataset_dir, i) for i in missing_before)
        self.rendered += rendered
        rows, rows_seconds = write_rows(self.job, shard, {}, self.log_path)  # faults: in-process workers only
        info = json.loads((self.job.dataset_dir / "dataset.json").read_text())
        sidecar = json.loads((sample_dir(self.job.dataset_dir, shard.start) / SIDECAR).read_text())
        return ShardResult(
            shard_id=shard.shard_id, rendered=rendered, seconds=seconds, setup_seconds=0.0,
            render_call_seconds=0.0, seed=int(info["seed"]), config_hash=str(info["config_hash"]),
            blender_version=str(sidecar["blender_version"]), threads=int(sidecar["threads"]), node=node_id(),
            pid=os.getpid(), rss_mb=rss_mb(), worker_rendered=self.rendered, finished_at=time.time(),
            rows=rows, rows_seconds=rows_seconds,
        )

    def close(self) -> None:
        """Nothing to free: every shard had its own process."""


