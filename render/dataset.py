"""Renders samples of a dataset into `DATA_DIR/NAME/samples/`, each published atomically.

A sample is rendered into a folder staged by `core.publish.Staged` (`samples/.tmp-<pid>-<host>~NNNNNN/`) and
renamed to `samples/NNNNNN/` once its views and sidecar are written, so a sample folder is either complete or
absent, whatever kills the process (`core.samples.is_complete`). Rendering a sample that is already complete is a
no-op; two processes rendering the same sample publish it once (the second rename fails and its copy is dropped),
so re-runs and retries never duplicate anything. Debris of killed renderers on this machine is removed by
`core.publish.remove_dead_debris` when a renderer starts.
"""

import inspect
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import gin
from core import publish
from core import samples as sample_rules
from core.layout import DATASET_JSON, Layout, LayoutError, read_dataset_json
from core.process import pid_alive

from render import compat, declared_layout, identity, seeding, voxels
from render.blender_scene import BlenderScene, MeshImportError
from render.settings import BatchSettings, DatasetSettings, RenderingSettings
from render.spec import SceneSpec, VoxelSpec, records_json

logger = logging.getLogger(__name__)

#: dataset.json: 2 declares the layout (core.layout); 1 (no layout) is still resumed, never rewritten.
DATASET_FORMAT_VERSION = 2
#: sample.json: records, a view's own light and the split were added without breaking a reader of 1.
SIDECAR_FORMAT_VERSION = 1


class DatasetMismatchError(RuntimeError):
    """The output folder holds a dataset made with another configuration."""


_SCRATCH_PREFIX = "nsd-render-"


def _sweep_dead_scratch(root: Path) -> None:
    """Removes scratch folders of renderers on this machine that died without cleaning up (e.g. SIGKILL)."""
    for folder in sorted(root.glob(f"{_SCRATCH_PREFIX}*")):
        pid = folder.name[len(_SCRATCH_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _write_voxels(grid: VoxelSpec, folder: Path) -> dict:
    """Writes `<name>.binvox` of a voxel grid into the (staged) sample folder; returns its sidecar entry.

    Raises:
        voxels.VoxelizationError: the mesh cannot be voxelised (the sample is then not published at all).
    """
    out = voxels.voxelize_file(grid.source, grid.dim, grid.fill)
    name = f"{grid.name}.binvox"
    voxels.write_binvox(folder / name, out.grid)
    return {"file": name, "shape": [grid.dim] * 3, "dtype": "uint8", "source": grid.source, "fill": out.fill,
            "occupied": int(out.grid.sum()), "translate": list(voxels.UNIT_CUBE_TRANSLATE),
            "scale": voxels.UNIT_CUBE_SCALE}


class DatasetRenderer:
    """Renders samples of the dataset configured in gin into `dataset_dir`.

    Args:
        dataset_dir: `DATA_DIR/NAME`.
        threads: Cycles threads (recorded in every sidecar).
        log_path: file receiving Blender's console output (None drops it).
    """

    def __init__(self, dataset_dir: Path, threads: int = 1, log_path: Path | None = None) -> None:
        self.dataset_dir = Path(dataset_dir)
        self.samples_dir = sample_rules.samples_dir(self.dataset_dir)
        self.threads = threads
        self.settings = DatasetSettings()
        if self.settings.generator is None:
            raise ValueError("dataset.generator is not bound; a dataset gin file must set it, "
                             "e.g. `dataset.generator = @selfstudy_scene` (see config/render_single.gin)")
        self.rendering = RenderingSettings()
        self.batch = batch = BatchSettings()
        if batch.bad_mesh == "redraw" and "skip" not in inspect.signature(self.settings.generator).parameters:
            raise ValueError(f"batch.bad_mesh = 'redraw' needs a generator that takes `skip` (mesh files to leave "
                             f"out); {self.settings.name!r} does not: use 'skip' or 'fail'")
        self.config_hash = identity.config_hash(gin.config_str())
        self.identity: dict = {}
        scratch_root = Path("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
        _sweep_dead_scratch(scratch_root)
        self._work = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-", dir=scratch_root))
        self.scene = BlenderScene(self.rendering, threads, self._work, cache_meshes=batch.cache_obj_frames,
                                  log_path=log_path)
        self.rendered = 0
        #: the declared layout every sample is checked against (None for a legacy dataset.json of format 1)
        self.layout: Layout | None = None

    def close(self) -> None:
        shutil.rmtree(self._work, ignore_errors=True)

    def _draw(self, index: int, skip: tuple[str, ...] = ()) -> SceneSpec:
        """Sample `index`'s spec: plain data, cheap to draw again. A redraw after a mesh failed (`skip` = the mesh
        files that failed, in failure order) starts from the same seed, so it depends on nothing but which files
        fail."""
        rng = seeding.sample_rng(self.settings.seed, index)
        if skip:
            return self.settings.generator(rng, index, skip=skip)
        return self.settings.generator(rng, index)

    def declared_layout(self, first: SceneSpec | None = None) -> Layout:
        """The layout this configuration declares: derived from sample 0's spec, whichever samples this process
        renders, so every shard of a dataset declares the same one."""
        return declared_layout.declare(first or self._draw(0), "exr" if self.rendering.render_exr else "png",
                                       self.settings.layout_kind, self.settings.name,
                                       albedo=self.rendering.albedo_pass)

    def _identity(self, first: SceneSpec) -> dict:
        """What every sample of this dataset must share (render.identity), from the config and sample 0."""
        return {"generator": self.settings.name, "seed": self.settings.seed, "config_hash": self.config_hash,
                "assets_digest": identity.assets_digest(first), "blender_version": compat.VERSION_STRING,
                "threads": self.threads}

    def _check_samples_on_disk(self) -> None:
        """Without dataset.json, the samples already in the folder must have been made by this very config."""
        for folder in sorted(p for p in self.samples_dir.iterdir() if sample_rules.SAMPLE_DIR_RE.match(p.name)):
            sidecar_path = folder / sample_rules.SIDECAR
            try:
                sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise DatasetMismatchError(f"{sidecar_path} is corrupt ({err}); delete that sample folder and "
                                           "continue") from None
            found = {**sidecar, "seed": sidecar.get("dataset_seed")}
            if "config_hash" in sidecar:  # written with its identity: no assets_digest means primitives only
                found.setdefault("assets_digest", None)
            differ = identity.mismatches(self.identity, found)
            if differ:
                raise DatasetMismatchError(
                    f"{self.dataset_dir} has no dataset.json and its sample {folder.name} was made differently "
                    f"({'; '.join(differ)}); render into another -d NAME, or delete the folder")

    def prepare(self) -> None:
        """Creates the folder, checks or writes dataset.json (with the layout declared from sample 0, before
        anything renders), and removes debris of dead processes on this host.

        Raises:
            DatasetMismatchError: the folder holds a dataset of another configuration or another layout.
            LayoutError: the generator's first sample cannot be declared (e.g. its views disagree), or
                dataset.json is corrupt.
        """
        first = self._draw(0)  # first: a generator that cannot draw sample 0 leaves no folder behind
        layout = self.declared_layout(first)
        self.identity = self._identity(first)
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        path = self.dataset_dir / DATASET_JSON
        if path.exists():
            try:
                existing = read_dataset_json(self.dataset_dir)
            except LayoutError as err:
                raise DatasetMismatchError(str(err)) from None
            differ = identity.mismatches(self.identity, existing)
            if differ:
                raise DatasetMismatchError(
                    f"{self.dataset_dir} holds a dataset made differently ({'; '.join(differ)}); render into "
                    "another -d NAME or delete that folder (a changed assets_digest means the asset index was "
                    "re-indexed since the dataset was started)"
                )
            if "layout" in existing:
                self.layout = self._check_existing_layout(existing["layout"], layout, path)
            else:  # format 1: rendered before layouts were declared; consolidation infers its layout
                logger.info("%s has no layout declaration (format %s); resuming without one",
                            path, existing.get("format_version"))
        else:
            self._check_samples_on_disk()
            info = {"format_version": DATASET_FORMAT_VERSION, **self.identity, "layout": layout.to_json()}
            if info["assets_digest"] is None:  # scenes of primitives: no catalogue to pin
                del info["assets_digest"]
            publish.write_text(path, json.dumps(info, indent=1, sort_keys=True) + "\n")
            self.layout = layout
        publish.remove_dead_debris(self.samples_dir)

    def _check_existing_layout(self, data: object, layout: Layout, path: Path) -> Layout:
        try:
            existing = Layout.from_json(data, where=str(path))
        except LayoutError as err:
            raise DatasetMismatchError(f"{err}; render into another -d NAME or delete that folder") from None
        if existing != layout:
            fields = [k for k, v in layout.to_json().items() if existing.to_json()[k] != v]
            raise DatasetMismatchError(
                f"{path} declares another layout than this configuration's sample 0 gives (fields {fields}: "
                f"{[existing.to_json()[k] for k in fields]} != {[layout.to_json()[k] for k in fields]}); the "
                "generator's code changed since the dataset was started: render into another -d NAME")
        return existing

    def is_complete(self, index: int) -> bool:
        """Whether sample `index` is published (`core.samples.is_complete`)."""
        return sample_rules.is_complete(self.dataset_dir, index)

    def render_sample(self, index: int) -> bool:
        """Renders and publishes sample `index`; returns False when it was already complete.

        A mesh that fails to import publishes the sample as skipped (`batch.bad_mesh = 'skip'`, the default), is
        left out of a redraw of the sample (`'redraw'`, up to `batch.max_redraws` times, then skipped), or raises
        (`'fail'`).
        """
        if self.is_complete(index):
            return False
        seed = seeding.sample_seed(self.settings.seed, index)
        redrawn: list[dict] = []
        while True:
            spec = self._draw(index, tuple(r["mesh"] for r in redrawn))
            if self.layout is not None:
                declared_layout.check(spec, self.layout, self.settings.name, index)
            try:
                staged = self._render_into_folder(index, seed, spec, redrawn)
                break
            except (MeshImportError, voxels.VoxelizationError) as err:
                if self.batch.bad_mesh == "fail":
                    raise
                if self.batch.bad_mesh == "redraw" and getattr(err, "path", None) is not None and len(redrawn) < self.batch.max_redraws:
                    logger.warning("sample %d: skipping mesh %s (%s); drawing the sample again without it",
                                   index, err.path, err)
                    redrawn.append({"mesh": err.path, "error": str(err)})
                    continue
                logger.error("sample %d skipped: %s", index, err)
                staged = self._publish_skipped(index, seed, spec, err)
                break
        if not staged.published:  # published meanwhile by another process: theirs is kept (same bytes)
            return False
        self.rendered += 1
        operative = self.dataset_dir / "operative_config.gin"
        if not operative.exists():
            publish.write_text(operative, gin.operative_config_str())
        return True

    def _sidecar_head(self, index: int, seed: int, spec: SceneSpec) -> dict:
        """The sidecar fields every sample carries, rendered or skipped: where it belongs and its identity."""
        head = {
            "format_version": SIDECAR_FORMAT_VERSION,
            "dataset": self.dataset_dir.name,
            "index": index,
            "dataset_seed": self.settings.seed,
            "seed": seed,
            "generator": self.settings.name,
            "blender_version": compat.VERSION_STRING,
            "threads": self.threads,
            "config_hash": self.config_hash,
            "classes": list(spec.classes),
        }
        if self.identity.get("assets_digest"):
            head["assets_digest"] = self.identity["assets_digest"]
        if spec.split is not None:
            head["split"] = spec.split
        return head

    def _write_sidecar(self, folder: Path, sidecar: dict) -> None:
        # written last: a folder holding its sidecar is complete (core.samples)
        (folder / sample_rules.SIDECAR).write_text(json.dumps(sidecar, indent=1, sort_keys=True) + "\n")

    def _render_into_folder(self, index: int, seed: int, spec: SceneSpec,
                            redrawn: list[dict] | None = None) -> publish.Staged:
        """Renders sample `index` into its staged folder and publishes it (`staged.published` says whether);
        `redrawn` lists the mesh files a redraw left out (the sidecar's `skipped_meshes`)."""
        try:
            with publish.Staged(sample_rules.sample_dir(self.dataset_dir, index), folder=True) as staged:
                scene_info = self.scene.build(spec)
                suffix = ".exr" if self.rendering.render_exr else ".png"
                views = [
                    self.scene.render_view(view, (seed + v) & 0x7FFFFFFF, staged.path / f"view_{v:02d}{suffix}")
                    for v, view in enumerate(spec.views)
                ]
                self._write_sidecar(staged.path, {
                    **self._sidecar_head(index, seed, spec),
                    "engine": "CYCLES",
                    "render_samples": self.rendering.render_samples,
                    "resolution": [self.rendering.resolution, self.rendering.resolution],
                    **scene_info,
                    "records": records_json(spec.records),
                    "views": views,
                    # only with voxel grids: other datasets keep their sidecar bytes
                    **({"arrays": {grid.name: _write_voxels(grid, staged.path) for grid in spec.voxels}}
                       if spec.voxels else {}),
                    **({"skipped_meshes": redrawn} if redrawn else {}),
                })
        finally:
            self.scene.clear()
        return staged

    def _publish_skipped(self, index: int, seed: int, spec: SceneSpec, err: Exception) -> publish.Staged:
        """Publishes sample `index` as skipped: a sidecar naming the error and no views (docs/formats.md §1)."""
        with publish.Staged(sample_rules.sample_dir(self.dataset_dir, index), folder=True) as staged:
            self._write_sidecar(staged.path, {**self._sidecar_head(index, seed, spec), "views": [],
                                              "skipped": {"reason": str(err)}})
        return staged
