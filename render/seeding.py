"""Seeds: every random choice in a sample flows from (dataset seed, sample index)."""

import numpy as np


def sample_seed(dataset_seed: int, index: int) -> int:
    """Returns the 31-bit seed of sample `index` of a dataset seeded with `dataset_seed`.

    SeedSequence mixes both numbers so that neighbouring indices and neighbouring dataset seeds give
    unrelated streams; 31 bits keep the value valid as a Cycles seed too.
    """
    if dataset_seed < 0 or index < 0:
        raise ValueError(f"seeds and indices must be non-negative, got dataset_seed={dataset_seed}, index={index}")
    state = np.random.SeedSequence([dataset_seed, index]).generate_state(1, np.uint32)[0]
    return int(state) & 0x7FFFFFFF


def sample_rng(dataset_seed: int, index: int) -> np.random.Generator:
    """The generator every random choice of one sample is drawn from."""
    return np.random.default_rng(sample_seed(dataset_seed, index))
