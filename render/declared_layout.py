"""The layout a dataset declares in dataset.json (core.layout), derived from its generator's first sample.

Plain data, no Blender: `declare` reads a `SceneSpec` (drawing one is cheap), `check` compares a later sample with
the declaration so a generator whose samples disagree fails at the first odd sample, naming the field, instead of
leaving consolidation to guess.
"""

from core.layout import Layout, LayoutError
from core.samples import SPLIT_RULE

from render.spec import Records, SceneSpec, record_shape

#: What each view file carries (render/view_output.py writes these channels into the canonical EXR).
EXR_CHANNELS = ("rgb", "depth", "instance", "semantic", "normal")
#: ... and with `rendering.albedo_pass`, the diffuse colour.
ALBEDO_CHANNEL = "albedo"
PNG_CHANNELS = ("rgb",)


class LayoutMismatchError(LayoutError):
    """A sample of the generator disagrees with the layout the dataset declared; the message names the field."""


def _shapes(records: Records) -> dict[str, tuple[int, ...]]:
    return {name: record_shape(value) for name, value in records}


def _view_record_shapes(spec: SceneSpec, where: str) -> dict[str, tuple[int, ...]]:
    first = _shapes(spec.views[0].records)
    for v, view in enumerate(spec.views[1:], start=1):
        shapes = _shapes(view.records)
        if shapes != first:
            raise LayoutMismatchError(f"{where}: view {v} has records {_describe(shapes)} but view 0 has "
                                      f"{_describe(first)}; every view must carry the same record names and shapes")
    return first


def _describe(shapes: dict[str, tuple[int, ...]]) -> str:
    return "{" + ", ".join(f"{k}: {list(v)}" for k, v in sorted(shapes.items())) + "}"


def _arrays(spec: SceneSpec) -> dict[str, tuple[int, ...]]:
    return {v.name: (v.dim, v.dim, v.dim) for v in spec.voxels}


def declare(spec: SceneSpec, image_format: str, kind: str | None, generator: str, albedo: bool = False) -> Layout:
    """The layout of a dataset whose samples look like `spec` (its first sample).

    Args:
        spec: the generator's sample 0.
        image_format: "exr" or "png" (`rendering.render_exr`).
        kind: "scene-major" or "sample-major" when the config says so (`dataset.layout_kind`); None takes
            scene-major exactly when the sample has more than one view.
        generator: the generator's name, for messages.
        albedo: the views carry the albedo channel (`rendering.albedo_pass`; EXR only).
    Raises:
        LayoutMismatchError: the sample's views disagree among themselves in their records.
        LayoutError: a kind that cannot hold the sample (sample-major with several views).
    """
    views = len(spec.views)
    if kind is None:
        kind = "scene-major" if views > 1 else "sample-major"
    try:
        return Layout(
            kind=kind,
            views=views,
            image_format=image_format,
            channels=(EXR_CHANNELS + (ALBEDO_CHANNEL,) * albedo) if image_format == "exr" else PNG_CHANNELS,
            view_records=_view_record_shapes(spec, f"generator {generator!r} sample 0"),
            sample_records=_shapes(spec.records),
            split="declared" if spec.split is not None else SPLIT_RULE,
            sample_arrays=_arrays(spec),
        )
    except LayoutMismatchError:
        raise
    except LayoutError as err:
        raise LayoutError(f"generator {generator!r}: {err} (dataset.layout_kind = {kind!r})") from None


def check(spec: SceneSpec, layout: Layout, generator: str, index: int) -> None:
    """Raises LayoutMismatchError when sample `index` does not fit the declared `layout`."""
    where = f"generator {generator!r} sample {index}"
    got = {
        "views": len(spec.views),
        "view_records": _view_record_shapes(spec, where),
        "sample_records": _shapes(spec.records),
        "split": "declared" if spec.split is not None else SPLIT_RULE,
        "sample_arrays": _arrays(spec),
    }
    for field, value in got.items():
        declared = getattr(layout, field)
        if value != declared:
            show = _describe if isinstance(value, dict) else repr
            raise LayoutMismatchError(
                f"{where} disagrees with the layout declared in dataset.json (from sample 0): {field} is "
                f"{show(value)}, declared {show(declared)}; a generator's samples must all have the same number "
                "of views, the same record names and shapes, and either all declare a split or none")
