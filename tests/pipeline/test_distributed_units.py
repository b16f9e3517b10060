"""Blender-free tests of distributed rendering: shard plan, manifest, fault hook, CLI planning, driver logic."""

import json
import time
from pathlib import Path

import pytest

import distributed_render
from pipeline.distribution import manifest as manifest_io
from pipeline.distribution.driver import render_dataset
from pipeline.distribution.faults import parse_faults
from pipeline.distribution.job import (
    DatasetExistsError,
    FatalRenderError,
    RenderJob,
    RunOptions,
    ShardResult,
    WorkerFailure,
)
from pipeline.distribution.shards import plan_shards
from tests.pipeline.distributed_testlib import assert_exactly, manifest_records


def test_plan_shards_covers_every_index_once():
    shards = plan_shards(25, 10)
    assert [(s.shard_id, s.start, s.count) for s in shards] == [(0, 0, 10), (1, 10, 10), (2, 20, 5)]
    assert sum((s.indices for s in shards), []) == list(range(25))
    assert plan_shards(0, 10) == []
    assert shards[2].describe() == "shard 2 (samples 20-24)"
    with pytest.raises(ValueError, match="-b"):
        plan_shards(5, 0)


def _entry(shard: int, samples: list[int]) -> manifest_io.ManifestEntry:
    return manifest_io.ManifestEntry(shard=shard, samples=samples, seed=0, config_hash="abc",
                                     blender_version="5.0.1", threads=1)


def test_manifest_append_load_and_torn_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    manifest_io.append(path, _entry(0, [0, 1]))
    manifest_io.append(path, _entry(1, [2, 3]))
    assert [e.shard for e in manifest_io.load(path)] == [0, 1]
    record = json.loads(path.read_text().splitlines()[0])
    assert {"shard", "samples", "seed", "config_hash", "blender_version", "threads"} <= set(record)
    with open(path, "a") as f:  # what a driver killed inside write() would leave
        f.write('{"shard": 2, "samp')
    assert [e.shard for e in manifest_io.load(path)] == [0, 1]


def test_manifest_rejects_duplicates_and_garbage(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(_entry(0, [0]).to_line() + _entry(0, [0]).to_line())
    with pytest.raises(manifest_io.ManifestError, match="shard 0 twice"):
        manifest_io.load(path)
    path.write_text(_entry(0, [0]).to_line() + "not json\n")
    with pytest.raises(manifest_io.ManifestError, match="line 2"):
        manifest_io.load(path)


def test_parse_faults():
    faults = parse_faults("kill@7, raise-always@12,pause@3")
    assert {i: (f.action, f.always) for i, f in faults.items()} == {
        7: ("kill", False), 12: ("raise", True), 3: ("pause", False)}
    assert parse_faults(None) == {}
    for bad in ("kill7", "explode@3", "kill@x", "kill-always@2"):
        with pytest.raises(ValueError, match="NSD_FAULT"):
            parse_faults(bad)


def _args(*argv: str):
    return distributed_render.build_parser().parse_args(list(argv))


def test_default_plan_is_the_12_selfstudy_variants():
    plans = distributed_render.plan_datasets(_args("-p", "rendering.resolution = 32", "--num_classes", "3"))
    names = [p.name for p in plans]
    assert len(plans) == 12 and len(set(names)) == 12
    assert names[0] == "selfstudy_T0_C0_V0_L0" and names[10] == "selfstudy_T1_C0_V1_L1"
    bits = {"0-0-0-0", "1-0-0-0", "0-1-0-0", "0-0-1-0", "0-0-0-1", "1-1-0-0", "0-1-1-0", "0-1-0-1", "0-1-1-1",
            "1-1-1-0", "1-0-1-1", "1-1-1-1"}
    assert {"-".join(part[1] for part in n.split("_")[1:]) for n in names} == bits
    t1c0v1l1 = plans[10]
    assert t1c0v1l1.gin_files == ("render_single",)
    assert t1c0v1l1.bindings[:4] == ("material.use_texture = True", "material.color_variation = 0.0",
                                     "object.random_viewpoint = 1.0", "lighting.r = 1.0")
    assert t1c0v1l1.bindings[4:] == ("sample.class_idxs = (0, 1, 2)", "rendering.resolution = 32")
    # every variant's bindings parse against the real gin configurables
    distributed_render.validate_gin(t1c0v1l1)


def test_multi_and_gin_plans():
    (multi,) = distributed_render.plan_datasets(_args("--is_multi"))
    assert (multi.name, multi.gin_files) == ("selfstudy_multi", ("render_multi",))
    (single,) = distributed_render.plan_datasets(_args("-g", "render_single", "-d", "mine"))
    assert (single.name, single.gin_files, single.bindings) == ("mine", ("render_single",), ())


def test_cli_refuses_a_non_empty_dataset_without_continue(tmp_path, capsys):
    (tmp_path / "taken" / "samples").mkdir(parents=True)
    code = distributed_render.main(["-g", "render_single", "-d", "taken", "--data_dir", str(tmp_path), "-l"])
    assert code == 2
    assert "pass -c to continue" in capsys.readouterr().err


def test_cli_reports_bad_gin_binding(tmp_path, capsys):
    code = distributed_render.main(["-g", "render_single", "-d", "x", "--data_dir", str(tmp_path), "-l",
                                    "-p", "rendering.resolutoin = 32"])
    assert code == 2
    assert "resolutoin" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------- driver logic with a fake executor
class Ticket:
    """An attempt of the fake executor (hashable by identity, like a Ray ObjectRef)."""

    def __init__(self, worker: dict, shard, mode: str | None) -> None:
        self.worker, self.shard, self.mode = worker, shard, mode


class FakeExecutor:
    """Workers that publish sample.json files; `fail` maps (shard id, attempt) to "die" or "short"."""

    instances: list["FakeExecutor"] = []

    queues = True

    def __init__(self, job: RenderJob, fail: dict[tuple[int, int], str] | None = None) -> None:
        self.job, self.fail = job, fail or {}
        self.attempts: dict[int, int] = {}
        self.started, self.stopped, self.published = [], [], []
        self.outstanding: dict[int, int] = {}  # worker id -> attempts submitted and not yet collected
        self.most_outstanding = 0
        FakeExecutor.instances.append(self)

    def start(self, worker_id, log_path):
        log_path.write_text(f"worker {worker_id}\n")
        self.started.append(worker_id)
        return {"id": worker_id, "rendered": 0}

    def submit(self, worker, shard):
        n = self.attempts[shard.shard_id] = self.attempts.get(shard.shard_id, 0) + 1
        mode = self.fail.get((shard.shard_id, n))
        todo = shard.indices[: len(shard.indices) // 2] if mode in ("die", "short") else shard.indices
        for i in todo:
            folder = self.job.dataset_dir / "samples" / f"{i:06d}"
            if not folder.exists():
                folder.mkdir(parents=True)
                (folder / "sample.json").write_text("{}")
                self.published.append(i)
                worker["rendered"] += 1
        self.outstanding[worker["id"]] = self.outstanding.get(worker["id"], 0) + 1
        self.most_outstanding = max(self.most_outstanding, self.outstanding[worker["id"]])
        return Ticket(worker, shard, mode)

    def wait(self, tickets, timeout):
        return list(tickets)

    def outcome(self, ticket, log_path):
        worker, shard, mode = ticket.worker, ticket.shard, ticket.mode
        self.outstanding[worker["id"]] -= 1
        if mode == "die":
            raise WorkerFailure("worker died", log_path)
        return ShardResult(shard_id=shard.shard_id, rendered=0, seconds=0.1, setup_seconds=0.0,
                           render_call_seconds=0.05, seed=0, config_hash="abc", blender_version="5.0.1", threads=1,
                           node="fake", pid=0, rss_mb=10.0, worker_rendered=worker["rendered"],
                           finished_at=time.time())

    def stop(self, worker, graceful):
        self.stopped.append((worker["id"], graceful))


def _job(tmp_path: Path) -> RenderJob:
    return RenderJob(dataset_dir=tmp_path / "ds", gin_files=(), bindings=(), config_dir=tmp_path)


def _write_dataset_json(job: RenderJob) -> None:
    job.dataset_dir.mkdir(parents=True, exist_ok=True)
    (job.dataset_dir / "dataset.json").write_text(json.dumps({"config_hash": "abc", "seed": 0}))


def test_driver_retries_on_fresh_workers_and_records_each_shard_once(tmp_path):
    job = _job(tmp_path)
    _write_dataset_json(job)
    fail = {(1, 1): "die", (2, 1): "short", (2, 2): "die"}
    stats = render_dataset(job, 10, 3, RunOptions(workers=2, retries=2, resume=True, progress=False),
                           executor_factory=lambda j: FakeExecutor(j, fail))
    fake = FakeExecutor.instances[-1]
    assert stats.failures == [] and stats.retries == 3 and stats.rendered == 10
    assert sorted(fake.published) == list(range(10))  # no sample published twice
    records = assert_exactly(job.dataset_dir, 10, 3)
    assert {r["shard"]: r["attempts"] for r in records} == {0: 1, 1: 2, 2: 3, 3: 1}
    # three failed attempts cost three workers (killed, not closed); their logs are kept, the others' removed
    assert sum(1 for _, graceful in fake.stopped if not graceful) == 3
    assert len(sorted((job.dataset_dir / "logs").glob("*.log"))) == 3


def test_queued_shards_behind_a_failed_one_are_requeued_without_losing_an_attempt(tmp_path):
    job = _job(tmp_path)
    _write_dataset_json(job)
    fail = {(1, 1): "die", (4, 1): "short"}
    stats = render_dataset(job, 20, 2, RunOptions(workers=2, retries=1, resume=True, progress=False, queue_depth=2),
                           executor_factory=lambda j: FakeExecutor(j, fail))
    fake = FakeExecutor.instances[-1]
    assert fake.most_outstanding == 2  # workers held a second shard while the first ran
    assert sum(fake.attempts.values()) > 10 + 2  # shards queued on the killed workers were submitted again
    assert stats.failures == [] and stats.retries == 2 and stats.rendered == 20
    assert sorted(fake.published) == list(range(20))
    records = assert_exactly(job.dataset_dir, 20, 2)
    # only the failed shards used an attempt; the ones queued behind them on the killed workers did not
    assert {r["shard"]: r["attempts"] for r in records} == {k: 2 if k in (1, 4) else 1 for k in range(10)}
    assert sum(1 for _, graceful in fake.stopped if not graceful) == 2


class ClockExecutor:
    """Workers on a simulated clock, each running its queued attempts in order like a Ray actor.

    `seconds(worker id, shard id)` is an attempt's duration; `die` names (shard id, attempt) pairs whose worker dies
    at the end of that attempt (its queued attempts fail with it); `fatal` names one that raises FatalRenderError.
    With `later_first`, `wait` reports only the newest ready attempt, as Ray may for a dead worker's calls.
    """

    queues = True

    def __init__(self, job: RenderJob, seconds=lambda worker, shard: 1.0, die=(), fatal=None, later_first=False):
        self.job, self.seconds, self.die, self.fatal, self.later_first = job, seconds, set(die), fatal, later_first
        self.now, self.tries, self.started, self.stopped, self.ran = 0.0, {}, [], [], []

    def start(self, worker_id, log_path):
        log_path.write_text(f"worker {worker_id}\n")
        self.started.append(worker_id)
        return {"id": worker_id, "free_at": self.now, "dead_at": None, "rendered": 0}

    def submit(self, worker, shard):
        n = self.tries[shard.shard_id] = self.tries.get(shard.shard_id, 0) + 1
        begin = max(self.now, worker["free_at"])
        ticket = Ticket(worker, shard, None)
        ticket.n, ticket.begin, ticket.end = n, begin, begin + self.seconds(worker["id"], shard.shard_id)
        if worker["dead_at"] is not None:
            ticket.mode, ticket.end = "dead", max(self.now, worker["dead_at"])
        elif (shard.shard_id, n) in self.die:
            ticket.mode, worker["dead_at"] = "dead", ticket.end
        worker["free_at"] = ticket.end
        return ticket

    def wait(self, tickets, timeout):
        if tickets and not any(t.end <= self.now for t in tickets):
            self.now = min(t.end for t in tickets)
        ready = [t for t in tickets if t.end <= self.now]
        return sorted(ready, key=lambda t: t.begin)[-1:] if self.later_first else ready

    def outcome(self, ticket, log_path):
        if (ticket.shard.shard_id, ticket.n) == self.fatal:
            raise FatalRenderError("bad config")
        if ticket.mode == "dead":
            raise WorkerFailure("worker died", log_path)
        for i in ticket.shard.indices:
            folder = self.job.dataset_dir / "samples" / f"{i:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "sample.json").write_text("{}")
        ticket.worker["rendered"] += len(ticket.shard.indices)
        self.ran.append((ticket.worker["id"], ticket.shard.shard_id, ticket.begin, ticket.end))
        return ShardResult(shard_id=ticket.shard.shard_id, rendered=len(ticket.shard.indices),
                           seconds=ticket.end - ticket.begin, setup_seconds=0.0, render_call_seconds=0.0, seed=0,
                           config_hash="abc", blender_version="5.0.1", threads=1, node="fake", pid=0, rss_mb=10.0,
                           worker_rendered=ticket.worker["rendered"], finished_at=ticket.end)

    def stop(self, worker, graceful):
        self.stopped.append((worker["id"], graceful))
        worker["dead_at"] = worker["dead_at"] if worker["dead_at"] is not None else self.now


def _clock_run(tmp_path: Path, n: int, options: RunOptions, **kwargs) -> tuple[ClockExecutor, object, RenderJob]:
    job = _job(tmp_path)
    _write_dataset_json(job)
    made = []
    stats = render_dataset(job, n, 1, options, executor_factory=lambda j: made.append(ClockExecutor(j, **kwargs))
                           or made[-1])
    return made[-1], stats, job


@pytest.mark.parametrize(("shards", "on_slow", "fast_done"), [(4, [0], 3.0), (8, [0, 2], 6.0)])
def test_last_shards_go_to_the_worker_that_frees_up_first(tmp_path, shards, on_slow, fast_done):
    # worker 0 takes 10 s a shard, worker 1 takes 1 s. The slow worker gets its first shard, and a second one
    # queued only while more than one shard per worker is left; every later shard goes to the worker that is free
    clock, stats, job = _clock_run(tmp_path, shards, RunOptions(workers=2, resume=True, progress=False, queue_depth=2),
                                   seconds=lambda worker, shard: 10.0 if worker == 0 else 1.0)
    assert stats.failures == [] and stats.rendered == shards
    assert_exactly(job.dataset_dir, shards, 1)
    assert sorted(shard for worker, shard, _, _ in clock.ran if worker == 0) == on_slow
    assert max(end for worker, *_, end in clock.ran if worker == 1) == fast_done


def test_a_dead_workers_running_attempt_is_charged_even_when_ray_reports_its_queued_one_first(tmp_path):
    clock, stats, job = _clock_run(tmp_path, 6, RunOptions(workers=1, retries=0, resume=True, progress=False,
                                                             queue_depth=2),
                                   die={(0, 1)}, later_first=True)
    # shard 0 killed its worker; shard 1 only waited behind it and must not be reported as failed
    assert len(stats.failures) == 1 and stats.failures[0].startswith("shard 0 ")
    assert sorted(r["shard"] for r in manifest_records(job.dataset_dir)) == [1, 2, 3, 4, 5]
    assert {r["shard"]: r["attempts"] for r in manifest_records(job.dataset_dir)}[1] == 1
    assert clock.tries[1] == 2  # submitted again on the fresh worker


def test_fatal_error_keeps_the_workers_log_and_a_retry_needs_no_extra_worker(tmp_path):
    with pytest.raises(FatalRenderError):
        _clock_run(tmp_path, 4, RunOptions(workers=1, resume=True, progress=False), fatal=(0, 1))
    assert len(sorted((tmp_path / "ds" / "logs").glob("*.log"))) == 1
    # 3 workers, 3 shards; worker 0 dies as the others finish theirs: the retry goes to an idle worker
    clock, stats, job = _clock_run(tmp_path / "again", 3, RunOptions(workers=3, resume=True, progress=False),
                                   die={(0, 1)})
    assert stats.failures == [] and stats.retries == 1 and clock.started == [0, 1, 2]
    assert_exactly(job.dataset_dir, 3, 1)


def test_driver_gives_up_after_retries_and_resume_finishes(tmp_path):
    job = _job(tmp_path)
    _write_dataset_json(job)
    fail = {(1, 1): "die", (1, 2): "die"}
    stats = render_dataset(job, 6, 2, RunOptions(workers=1, retries=1, resume=True, progress=False),
                           executor_factory=lambda j: FakeExecutor(j, fail))
    assert len(stats.failures) == 1 and "shard 1 (samples 2-3) failed after 2 attempts" in stats.failures[0]
    logs = stats.failures[0].split("logs: ")[1].split(", ")
    assert len(logs) == 2 and all(Path(p).is_file() for p in logs)
    assert [r["shard"] for r in manifest_records(job.dataset_dir)] == [0, 2]
    stats = render_dataset(job, 6, 2, RunOptions(workers=1, resume=True, progress=False),
                           executor_factory=FakeExecutor)
    assert stats.failures == [] and stats.shards_skipped == 2 and stats.rendered == 1  # only sample 3 was missing
    assert_exactly(job.dataset_dir, 6, 2)


def test_driver_recycles_workers(tmp_path):
    job = _job(tmp_path)
    _write_dataset_json(job)
    stats = render_dataset(job, 12, 2, RunOptions(workers=1, recycle_after=4, resume=True, progress=False),
                           executor_factory=FakeExecutor)
    fake = FakeExecutor.instances[-1]
    assert fake.started == [0, 1, 2] and all(graceful for _, graceful in fake.stopped)
    assert stats.between_shards == 3  # one pair of consecutive shards on each of the three workers
    assert not (job.dataset_dir / "logs").exists()  # no failure: no log left


def test_resume_drops_broken_shards_and_checks_the_plan(tmp_path):
    job = _job(tmp_path)
    _write_dataset_json(job)
    render_dataset(job, 6, 2, RunOptions(workers=1, resume=True, progress=False), executor_factory=FakeExecutor)
    (job.dataset_dir / "samples" / "000003" / "sample.json").unlink()  # shard 1 broken after the fact
    (job.dataset_dir / "samples" / "000003").rmdir()
    stats = render_dataset(job, 6, 2, RunOptions(workers=1, resume=True, progress=False),
                           executor_factory=FakeExecutor)
    assert FakeExecutor.instances[-1].published == [3] and stats.shards_skipped == 2
    assert_exactly(job.dataset_dir, 6, 2)
    with pytest.raises(manifest_io.ManifestError, match="the -n and -b of the run that started"):
        render_dataset(job, 6, 3, RunOptions(workers=1, resume=True, progress=False), executor_factory=FakeExecutor)
    with pytest.raises(DatasetExistsError, match="-c"):
        render_dataset(job, 6, 2, RunOptions(workers=1, progress=False), executor_factory=FakeExecutor)
