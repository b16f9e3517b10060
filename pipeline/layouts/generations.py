"""One consolidation generation: the split files and `consolidation.json` of a dataset belong together.

Consolidation writes every file under a temporary name and renames them one by one, `consolidation.json` last;
a consolidation killed between two renames (or a `-b` run over changed samples) would leave files of two
consolidations side by side. Each file therefore carries the `generation` id of the consolidation that wrote it
(`consolidate.generation_id`), and readers check that the files they use and `consolidation.json` agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py

REPORT = "consolidation.json"


class GenerationMixError(ValueError):
    """The consolidated files of a dataset come from different consolidations; the message names them."""


def split_files(dataset_dir: str | Path) -> list[Path]:
    """The consolidated split files of a dataset (§2 buckets or §3 scene files), sorted; temporaries excluded."""
    folder = Path(dataset_dir)
    return sorted(p for pattern in ("imgs_[0-9][0-9].h5", "scenes_*.h5") for p in folder.glob(pattern))


def file_generation(path: Path) -> str | None:
    """The `generation` attribute of one consolidated file (None for files written before generations)."""
    with h5py.File(path, "r") as fh:
        value = fh.attrs.get("generation")
    return None if value is None else str(value)


def check_generation(dataset_dir: str | Path, files: list[Path] | None = None) -> str | None:
    """The generation shared by `consolidation.json` and the split files (all of them by default).

    Returns:
        The generation id, or None for a dataset consolidated before generations existed (no ids anywhere).

    Raises:
        GenerationMixError: files of different consolidations, or a split file without a finished
            consolidation.json; the message names the files and says to re-run `preprocess_data.py -f`.
    """
    folder = Path(dataset_dir)
    files = split_files(folder) if files is None else files
    try:
        report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
    except FileNotFoundError:
        report = None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GenerationMixError(f"{folder / REPORT} is corrupt ({err}); re-run `preprocess_data.py -d "
                                 f"{folder.name} -f` to consolidate the dataset again") from None
    ids = {p.name: file_generation(p) for p in files}
    expected = None if report is None else report.get("generation")
    if expected is None and report is not None and not any(ids.values()):
        return None  # consolidated before generations: nothing to compare
    if report is None:
        if files:
            raise GenerationMixError(f"{folder}: {', '.join(ids)} exist but {REPORT} does not (a consolidation was "
                                     f"interrupted); re-run `preprocess_data.py -d {folder.name} -f`")
        return None
    odd = sorted(name for name, gen in ids.items() if gen != expected)
    if odd:
        raise GenerationMixError(
            f"{folder}: {', '.join(odd)} come from another consolidation than {REPORT} (generation "
            f"{expected}); a consolidation was interrupted or rewrote only some files: re-run "
            f"`preprocess_data.py -d {folder.name} -f`")
    return expected
