"""Progress of a distributed render: a tqdm bar over samples (rate and ETA) and the closing throughput line."""

import logging
import sys
import time
from dataclasses import dataclass, field

from tqdm import tqdm

logger = logging.getLogger(__name__)


class SampleProgress:
    """A progress bar counting complete samples of one dataset.

    Args:
        name: dataset name shown before the bar.
        total: samples the run must end with.
        already: samples complete before the run started (shown, but kept out of the rate and ETA).
        enabled: False draws nothing (tests, logs).
    """

    def __init__(self, name: str, total: int, already: int, enabled: bool = True) -> None:
        self._bar = tqdm(total=total, initial=already, desc=name, unit="sample", dynamic_ncols=True,
                         smoothing=0.1, disable=not enabled, file=sys.stderr)
        self._done = already

    def update_to(self, done: int) -> None:
        """Moves the bar to `done` complete samples (never backwards)."""
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done

    def note(self, **fields: object) -> None:
        """Shows short status fields after the bar (workers, retries, failures)."""
        self._bar.set_postfix(fields, refresh=False)

    def close(self) -> None:
        self._bar.close()


@dataclass
class Throughput:
    """What a run did, for the closing line and the benchmark.

    Attributes:
        name: dataset name.
        samples: samples the plan covers.
        already: samples that were complete before the run.
        rendered: samples this run rendered and published.
        seconds: wall time of the run (worker start-up included).
        shards_done: shards whose manifest line this run appended.
        shards_skipped: shards already in the manifest.
        retries: failed attempts that were retried.
        failures: one line per shard that still failed after its retries, with its log path.
        render_call_seconds: time spent inside Cycles' render calls, summed over workers.
        worker_seconds: wall time of the successful shard attempts, summed over workers.
        setup_seconds: worker start-up (gin, Blender scene) paid inside those attempts.
        timings: BlenderScene.timings (build, render_call, write, clear) summed over those attempts.
        workers: workers the run used at once.
        workers_started: workers started in all (replacements of failed and recycled workers included).
        between_shards_seconds: time workers spent between the end of one shard and the start of their next
            (waiting for the driver), summed over the `between_shards` consecutive pairs.
    """

    name: str
    samples: int = 0
    already: int = 0
    rendered: int = 0
    seconds: float = 0.0
    shards_done: int = 0
    shards_skipped: int = 0
    retries: int = 0
    failures: list[str] = field(default_factory=list)
    render_call_seconds: float = 0.0
    worker_seconds: float = 0.0
    setup_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    workers: int = 0
    workers_started: int = 0
    between_shards_seconds: float = 0.0
    between_shards: int = 0
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def stop_clock(self) -> None:
        self.seconds = time.perf_counter() - self._t0

    @property
    def samples_per_second(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The closing line, e.g. `selfstudy: 40 samples (38 rendered, 2 already complete) in 12.3 s, ...`."""
        return (f"{self.name}: {self.samples} samples ({self.rendered} rendered, {self.already} already complete) "
                f"in {self.seconds:.1f} s, {self.samples_per_second:.2f} samples/s, {self.workers} workers "
                f"({self.workers_started} started); "
                f"shards: {self.shards_done} finished, {self.shards_skipped} skipped, {self.retries} retried attempts, "
                f"{len(self.failures)} failed")
