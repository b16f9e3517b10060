"""Every difference between the Blender versions the project runs on (3.4 from Debian, 5.0 from PyPI).

Nothing outside this module branches on `bpy.app.version`.
"""

import logging
from pathlib import Path

from render.bpy_import import bpy

logger = logging.getLogger(__name__)

VERSION: tuple[int, int, int] = tuple(bpy.app.version)  # type: ignore[assignment]
VERSION_STRING: str = bpy.app.version_string

#: Canonical pass -> the pass names Blender writes into a multilayer EXR, newest first.
PASS_NAMES: dict[str, tuple[str, ...]] = {
    "combined": ("Combined",),
    "depth": ("Depth",),
    "instance": ("Object Index", "IndexOB"),
    "semantic": ("Material Index", "IndexMA"),
    "normal": ("Normal",),
    "albedo": ("Diffuse Color", "DiffCol"),  # only when rendering.albedo_pass enables the pass
}


def configure_multilayer_exr(image_settings: "bpy.types.ImageFormatSettings") -> None:
    """Makes a render write every enabled pass into one multilayer EXR (float32, uncompressed: it is read back
    at once and never kept)."""
    if hasattr(image_settings, "media_type"):  # 5.0: the media type gates which formats may be chosen
        image_settings.media_type = "MULTI_LAYER_IMAGE"
    image_settings.file_format = "OPEN_EXR_MULTILAYER"
    image_settings.color_depth = "32"
    image_settings.exr_codec = "NONE"
    if hasattr(image_settings, "use_exr_interleave"):  # 5.0 writes a part per pass unless told to interleave
        image_settings.use_exr_interleave = True


def configure_png(image_settings: "bpy.types.ImageFormatSettings") -> None:
    """Makes a render write an 8-bit sRGB RGB PNG."""
    if hasattr(image_settings, "media_type"):
        image_settings.media_type = "IMAGE"
    image_settings.file_format = "PNG"
    image_settings.color_mode = "RGB"
    image_settings.color_depth = "8"
    image_settings.compression = 15


def enable_cycles_denoiser(scene: "bpy.types.Scene", quality: str) -> None:
    """Makes Cycles run Open Image Denoise on the CPU at the end of every render call.

    The colour is filtered together with the albedo and normal of the same samples (prefilter "FAST": the
    guiding passes are noisy at a few samples and OIDN is told so).

    Raises:
        ValueError: this Blender's Cycles was built without OIDN (Debian's 3.4): a configuration no retry fixes.
    """
    cycles = scene.cycles
    try:
        cycles.denoiser = "OPENIMAGEDENOISE"
    except TypeError:
        raise ValueError(f"Cycles in Blender {VERSION_STRING} has no OpenImageDenoise; render with the bpy wheel "
                         "(python render.py) or set rendering.denoise = 'none'") from None
    cycles.use_denoising = True
    cycles.denoising_input_passes = "RGB_ALBEDO_NORMAL"
    cycles.denoising_prefilter = "FAST"
    if hasattr(cycles, "denoising_quality"):  # 4.1+
        cycles.denoising_quality = quality.upper()
    if hasattr(cycles, "denoising_use_gpu"):  # 4.1+: keep the filter where the timings and pixels are defined
        cycles.denoising_use_gpu = False


def disable_stamps(render: "bpy.types.RenderSettings") -> None:
    """Keeps dates and timings out of written files' metadata where Blender allows it."""
    for name in dir(render):
        if name.startswith("use_stamp") and isinstance(getattr(render, name), bool):
            setattr(render, name, False)


def new_material(name: str) -> "bpy.types.Material":
    """A material with a node tree holding one Principled BSDF."""
    material = bpy.data.materials.new(name)
    if VERSION < (5, 0, 0) or material.node_tree is None:
        material.use_nodes = True
    return material


def principled_input(node: "bpy.types.Node", name: str) -> "bpy.types.NodeSocket":
    """A Principled BSDF input by its 4.x+ name; 3.x called the emission colour 'Emission' and the specular
    level 'Specular'."""
    aliases = {"Emission Color": ("Emission Color", "Emission"), "Specular IOR Level": ("Specular IOR Level", "Specular")}
    for candidate in aliases.get(name, (name,)):
        if candidate in node.inputs:
            return node.inputs[candidate]
    raise KeyError(f"Principled BSDF has no input {name!r} in Blender {VERSION_STRING}")


def set_smooth(mesh: "bpy.types.Mesh", smooth: bool) -> None:
    mesh.polygons.foreach_set("use_smooth", [smooth] * len(mesh.polygons))


def cone_kwargs(radius_bottom: float, radius_top: float, depth: float, segments: int) -> dict:
    """Arguments of bmesh.ops.create_cone (3.0+ takes radii)."""
    return {"cap_ends": True, "segments": segments, "radius1": radius_bottom, "radius2": radius_top, "depth": depth}


def _importer(suffix: str):
    ops = bpy.ops
    table = {
        ".obj": ("wm.obj_import",),
        ".ply": ("wm.ply_import", "import_mesh.ply"),
        ".stl": ("wm.stl_import", "import_mesh.stl"),
        ".glb": ("import_scene.gltf",),
        ".gltf": ("import_scene.gltf",),
    }
    for dotted in table.get(suffix, ()):
        module, op = dotted.split(".")
        operator = getattr(getattr(ops, module), op)
        try:
            operator.get_rna_type()
        except KeyError:
            continue
        return operator
    return None


def import_mesh_file(path: Path) -> list["bpy.types.Object"]:
    """Imports a mesh file with Blender's own importer and returns the new mesh objects.

    Raises:
        RuntimeError: the format has no importer in this Blender, or the importer failed or made no mesh.
    """
    operator = _importer(path.suffix.lower())
    if operator is None:
        raise RuntimeError(f"Blender {VERSION_STRING} has no importer for {path.suffix!r} files")
    before = set(bpy.data.objects)
    try:
        result = operator(filepath=str(path))
    except RuntimeError as err:  # bpy reports importer errors as RuntimeError with Blender's message
        raise RuntimeError(f"Blender's importer failed: {str(err).strip()}") from err
    if "FINISHED" not in result:
        raise RuntimeError(f"Blender's importer returned {sorted(result)}")
    new = sorted((o for o in bpy.data.objects if o not in before), key=lambda o: o.name)
    meshes = [o for o in new if o.type == "MESH"]
    for obj in new:
        if obj.type != "MESH":
            bpy.data.objects.remove(obj, do_unlink=True)
    if not meshes:
        raise RuntimeError("the file holds no mesh")
    return meshes


def select_cycles_device(scene: "bpy.types.Scene", use_gpu: bool) -> str:
    """Sets Cycles' device; returns "GPU" or "CPU" (falls back to the CPU with a warning)."""
    scene.cycles.device = "CPU"
    if not use_gpu:
        return "CPU"
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpus:
            for device in prefs.devices:
                device.use = device.type == backend
            scene.cycles.device = "GPU"
            return "GPU"
    logger.warning("rendering.use_gpu is set but Blender found no GPU; rendering on the CPU")
    return "CPU"
