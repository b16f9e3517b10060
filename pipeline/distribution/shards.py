"""Shards of a distributed render: contiguous ranges of sample indices, planned the same way on every run.

A dataset of `num_samples` samples cut into shards of `shard_size` always gets the same shards
(shard k = samples `k * shard_size .. min((k + 1) * shard_size, num_samples) - 1`), so a resumed run can
match the shards it plans with the lines of `manifest.jsonl` written by an earlier run.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """Samples `start .. start + count - 1` of a dataset, the unit of work of one worker call.

    Attributes:
        shard_id: position of the shard in the plan (0-based); the manifest's `shard` field.
        start: first sample index.
        count: number of samples (>= 1).
    """

    shard_id: int
    start: int
    count: int

    @property
    def indices(self) -> list[int]:
        """Sample indices of the shard, ascending."""
        return list(range(self.start, self.start + self.count))

    @property
    def stop(self) -> int:
        """One past the last sample index."""
        return self.start + self.count

    def describe(self) -> str:
        """Short human form, e.g. `shard 3 (samples 30-39)`."""
        last = self.stop - 1
        span = f"sample {self.start}" if self.count == 1 else f"samples {self.start}-{last}"
        return f"shard {self.shard_id} ({span})"


def plan_shards(num_samples: int, shard_size: int) -> list[Shard]:
    """Cuts samples `0 .. num_samples - 1` into shards of `shard_size` (the last one may be shorter).

    Raises:
        ValueError: `num_samples` < 0 or `shard_size` < 1.
    """
    if num_samples < 0:
        raise ValueError(f"number of samples must be >= 0, got {num_samples} (-n)")
    if shard_size < 1:
        raise ValueError(f"shard size must be >= 1, got {shard_size} (-b)")
    return [Shard(k, start, min(shard_size, num_samples - start))
            for k, start in enumerate(range(0, num_samples, shard_size))]
