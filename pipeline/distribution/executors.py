"""Executors run shard attempts on workers: `LocalExecutor` in the driver process, `RayExecutor` on Ray actors.
The driver sees both through the `Executor` protocol, which is what its simulated-clock tests replace."""

import logging
from pathlib import Path
from typing import Any, Protocol

from pipeline.distribution.job import FatalRenderError, RenderJob, ShardResult, WorkerFailure
from pipeline.distribution.shards import Shard
from pipeline.distribution.workers import ProcessShardWorker, ShardWorker

logger = logging.getLogger(__name__)


class Executor(Protocol):
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


