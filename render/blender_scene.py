"""How Blender builds a `SceneSpec`: one long-lived Blender scene, rebuilt for every sample.

The render settings, camera and world are made once per process; objects, materials and lights are
rebuilt per sample and removed afterwards (with an orphan purge) so memory does not grow. Meshes loaded
from files are kept as prototypes in a bounded cache and shared by every instance.
"""

import contextlib
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from core import camera as camera_math
from core.off_mesh import OffFormatError, read_off

from render import compat, view_output
from render.bpy_import import bmesh, bpy, mathutils
from render.settings import RenderingSettings
from render.spec import LightSpec, MaterialSpec, MeshSpec, ObjectSpec, SceneSpec, ViewSpec, records_json

logger = logging.getLogger(__name__)

_MESH_CACHE_SIZE = 64


class MeshImportError(RuntimeError):
    """A mesh file could not be loaded; the message names the file, `path` holds it (None for primitives)."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


@contextlib.contextmanager
def redirect_stdout_fd(target: Path | None) -> Iterator[None]:
    """Sends what Blender's C code prints to fd 1 into `target` (or /dev/null) for the duration."""
    with contextlib.ExitStack() as stack:
        try:
            fd = os.sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):  # no real stdout (e.g. under a test runner's capture)
            yield
            return
        os.sys.stdout.flush()
        saved = os.dup(fd)
        stack.callback(os.close, saved)
        sink = os.open(str(target) if target else os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.dup2(sink, fd)
        finally:
            os.close(sink)
        try:
            yield
        finally:
            os.sys.stdout.flush()
            os.dup2(saved, fd)


@dataclass
class _Prototype:
    """Normalised mesh data blocks of one mesh file or primitive, and their local bounding box."""

    meshes: list["bpy.types.Mesh"]
    bbox: np.ndarray  # (2, 3)


def _bbox_of(meshes: list["bpy.types.Mesh"]) -> np.ndarray:
    points = []
    for mesh in meshes:
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        points.append(co.reshape(-1, 3))
    allp = np.concatenate(points) if points else np.zeros((1, 3))
    return np.stack([allp.min(axis=0), allp.max(axis=0)])


def _mesh_from_bmesh(name: str, build) -> "bpy.types.Mesh":
    bm = bmesh.new()
    try:
        build(bm)
        mesh = bpy.data.meshes.new(name)
        bm.to_mesh(mesh)
    finally:
        bm.free()
    return mesh


def _torus(bm: "bmesh.types.BMesh", major: float = 0.35, minor: float = 0.15, n_major: int = 32, n_minor: int = 16) -> None:
    verts = []
    for i in range(n_major):
        a = 2 * math.pi * i / n_major
        for j in range(n_minor):
            b = 2 * math.pi * j / n_minor
            r = major + minor * math.cos(b)
            verts.append(bm.verts.new((r * math.cos(a), r * math.sin(a), minor * math.sin(b))))
    for i in range(n_major):
        for j in range(n_minor):
            a, b = i * n_minor + j, ((i + 1) % n_major) * n_minor + j
            c, d = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor, i * n_minor + (j + 1) % n_minor
            bm.faces.new((verts[a], verts[b], verts[c], verts[d]))


def _uv_sphere(bm: "bmesh.types.BMesh", segments: int = 32, rings: int = 16, radius: float = 0.5) -> None:
    """UV sphere built vertex by vertex: bmesh.ops.create_uvsphere orders the pole faces' loops differently from
    run to run (bpy 5.0.1), which changes rendered pixels in the last bits."""
    top = bm.verts.new((0.0, 0.0, radius))
    ring_verts = []
    for j in range(1, rings):
        theta = math.pi * j / rings
        z, r = radius * math.cos(theta), radius * math.sin(theta)
        angles = [2 * math.pi * i / segments for i in range(segments)]
        ring_verts.append([bm.verts.new((r * math.cos(a), r * math.sin(a), z)) for a in angles])
    bottom = bm.verts.new((0.0, 0.0, -radius))
    for i in range(segments):
        k = (i + 1) % segments
        bm.faces.new((top, ring_verts[0][i], ring_verts[0][k]))
        for upper, lower in zip(ring_verts[:-1], ring_verts[1:], strict=True):
            bm.faces.new((upper[i], lower[i], lower[k], upper[k]))
        bm.faces.new((bottom, ring_verts[-1][k], ring_verts[-1][i]))


def _primitive_mesh(name: str) -> "bpy.types.Mesh":
    """Unit-sized primitive (largest side 1 m, centred on the origin)."""
    builders = {
        "cube": lambda bm: bmesh.ops.create_cube(bm, size=1.0),
        "sphere": _uv_sphere,
        "cylinder": lambda bm: bmesh.ops.create_cone(bm, **compat.cone_kwargs(0.5, 0.5, 1.0, 32)),
        "cone": lambda bm: bmesh.ops.create_cone(bm, **compat.cone_kwargs(0.5, 0.0, 1.0, 32)),
        "torus": _torus,
        "monkey": lambda bm: (bmesh.ops.create_monkey(bm), bmesh.ops.scale(bm, vec=(0.5, 0.5, 0.5), verts=bm.verts)),
    }
    if name.startswith("box:"):
        try:
            sx, sy, sz = (float(v) for v in name[4:].split(","))
        except ValueError as err:
            raise MeshImportError(f"bad box size {name!r}; expected 'box:sx,sy,sz'") from err

        def build(bm):
            bmesh.ops.create_cube(bm, size=1.0)
            bmesh.ops.scale(bm, vec=(sx, sy, sz), verts=bm.verts)
        mesh = _mesh_from_bmesh(name, build)
        compat.set_smooth(mesh, False)
        return mesh
    if name not in builders:
        raise MeshImportError(f"unknown primitive {name!r}; known: {sorted(builders)}")
    mesh = _mesh_from_bmesh(name, builders[name])
    compat.set_smooth(mesh, name in ("sphere", "torus", "monkey"))
    return mesh


def _off_mesh(path: Path) -> "bpy.types.Mesh":
    """A mesh data block from an ASCII OFF file (OFF, COFF, NOFF, STOFF...: `core.off_mesh`); Blender has no
    OFF importer. Per-vertex colours, normals and texture coordinates are dropped (materials come from the spec)."""
    try:
        off = read_off(path)
    except (OffFormatError, OSError) as err:
        raise MeshImportError(f"could not import mesh {path}: {err}", path) from err
    mesh = bpy.data.meshes.new(path.stem)
    mesh.from_pydata(off.vertices.tolist(), [], [face.tolist() for face in off.faces])
    mesh.validate()
    return mesh


class BlenderScene:
    """A Blender scene set up for the project's renders.

    Args:
        rendering: engine, resolution and sampling settings.
        threads: CPU threads Cycles uses (pinned: pixels are bit-identical only at the same thread count).
        work_dir: folder for Blender's intermediate files.
        cache_meshes: keep loaded meshes between samples.
        log_path: file that receives Blender's console output, or None to drop it.
    """

    def __init__(self, rendering: RenderingSettings, threads: int, work_dir: Path, cache_meshes: bool = True,
                 log_path: Path | None = None) -> None:
        self.rendering = rendering
        self.threads = threads
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.cache_meshes = cache_meshes
        self.log_path = log_path
        self._prototypes: OrderedDict[str, _Prototype] = OrderedDict()
        self._images: dict[str, bpy.types.Image] = {}
        self._sample_objects: list[bpy.types.Object] = []
        self._sample_data: list = []
        self._sample_lights: list[bpy.types.Object] = []
        #: each object's root and its world matrix as the sample placed it (a view's object_offset moves roots)
        self._sample_roots: list[tuple[bpy.types.Object, mathutils.Matrix]] = []
        self._roots_moved = False
        self.timings: dict[str, float] = {"build": 0.0, "render_call": 0.0, "write": 0.0, "clear": 0.0}
        self._setup()

    # ----------------------------------------------------------------------------------------- set-up
    def _setup(self) -> None:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        self.scene = scene
        r = self.rendering
        scene.render.engine = "CYCLES"
        self.device = compat.select_cycles_device(scene, r.use_gpu)
        scene.cycles.samples = r.render_samples
        scene.cycles.max_bounces = r.max_bounces
        scene.cycles.use_adaptive_sampling = r.adaptive_threshold > 0
        if r.adaptive_threshold > 0:
            scene.cycles.adaptive_threshold = r.adaptive_threshold
        scene.cycles.use_denoising = False
        if r.denoise == "cycles":
            compat.enable_cycles_denoiser(scene, r.denoise_quality)
        scene.cycles.pixel_filter_type = "BLACKMAN_HARRIS"
        scene.cycles.filter_width = r.filter_width
        scene.render.resolution_x = scene.render.resolution_y = r.resolution
        scene.render.resolution_percentage = 100
        scene.render.threads_mode = "FIXED"
        scene.render.threads = self.threads
        # Cycles keeps its session between the views of a sample (saving: docs/benchmarks.md, "Scene generators");
        # build() drops it at each new sample, because a session carried over from another sample changes pixels
        scene.render.use_persistent_data = True
        scene.render.film_transparent = False
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.display_settings.display_device = "sRGB"
        compat.disable_stamps(scene.render)
        layer = scene.view_layers[0]
        layer.use_pass_z = layer.use_pass_object_index = layer.use_pass_material_index = layer.use_pass_normal = True
        # off unless asked for: an extra pass changes nothing in the other passes' pixels but adds channels
        layer.use_pass_diffuse_color = r.albedo_pass
        if r.render_exr:
            compat.configure_multilayer_exr(scene.render.image_settings)
        else:
            compat.configure_png(scene.render.image_settings)
        camera_data = bpy.data.cameras.new("camera")
        camera_data.sensor_fit = "HORIZONTAL"
        camera_data.sensor_width = 36.0
        camera_data.clip_start, camera_data.clip_end = 0.01, 1000.0
        self.camera = bpy.data.objects.new("camera", camera_data)
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera
        world = bpy.data.worlds.new("world")
        if compat.VERSION < (5, 0, 0):
            world.use_nodes = True
        scene.world = world
        self._world_background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
        self._world_env = None

    # ---------------------------------------------------------------------------------------- meshes
    def _prototype(self, spec: MeshSpec) -> _Prototype:
        key = f"{spec.source}|{spec.normalize}"
        if key in self._prototypes:
            self._prototypes.move_to_end(key)
            return self._prototypes[key]
        if spec.source.startswith("primitive:") or spec.source.startswith("box:"):
            name = spec.source.split(":", 1)[1] if spec.source.startswith("primitive:") else spec.source
            meshes = [_primitive_mesh(name)]
        else:
            meshes = self._load_mesh_file(Path(spec.source))
        bbox = _bbox_of(meshes)
        if spec.normalize:
            size = float((bbox[1] - bbox[0]).max())
            if size <= 0:
                raise MeshImportError(f"{spec.source}: mesh has zero size", spec.source)
            centre = bbox.mean(axis=0)
            matrix = mathutils.Matrix.Scale(1.0 / size, 4) @ mathutils.Matrix.Translation(-mathutils.Vector(centre))
            for mesh in meshes:
                mesh.transform(matrix)
            bbox = _bbox_of(meshes)
        for mesh in meshes:
            mesh.use_fake_user = True
            if not mesh.materials:
                mesh.materials.append(None)
        proto = _Prototype(meshes=meshes, bbox=bbox)
        if self.cache_meshes:
            self._prototypes[key] = proto
            while len(self._prototypes) > _MESH_CACHE_SIZE:
                _, old = self._prototypes.popitem(last=False)
                self._free_meshes(old.meshes)
        else:
            self._sample_data.extend(meshes)
        return proto

    def _load_mesh_file(self, path: Path) -> list["bpy.types.Mesh"]:
        if not path.is_file():
            raise MeshImportError(f"mesh file {path} does not exist; re-run `python -m pipeline.assets fetch` "
                                  "or fix the path in the asset index", path)
        if path.suffix.lower() == ".off":
            return [_off_mesh(path)]
        try:
            with redirect_stdout_fd(self.log_path):
                objects = compat.import_mesh_file(path)
        except RuntimeError as err:
            raise MeshImportError(f"could not import mesh {path}: {err}", path) from err
        meshes = []
        for obj in objects:
            mesh = obj.data
            mesh.transform(obj.matrix_world)  # bake the importer's axis conversion into the data
            meshes.append(mesh)
            bpy.data.objects.remove(obj, do_unlink=True)
        return meshes

    @staticmethod
    def _free_meshes(meshes: list["bpy.types.Mesh"]) -> None:
        for mesh in meshes:
            mesh.use_fake_user = False
            bpy.data.meshes.remove(mesh)

    @staticmethod
    def _warped(mesh: "bpy.types.Mesh", amount: float, seed: int) -> "bpy.types.Mesh":
        """Copy of `mesh` displaced by a smooth random field of amplitude `amount` (mesh is unit-sized)."""
        rng = np.random.default_rng(seed)
        freq = rng.uniform(1.0, 3.0, size=(3, 3))
        phase = rng.uniform(0, 2 * math.pi, size=3)
        copy = mesh.copy()
        co = np.empty(len(copy.vertices) * 3)
        copy.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3)
        co += amount * np.sin(co @ freq.T * 2 * math.pi + phase)
        copy.vertices.foreach_set("co", co.reshape(-1))
        copy.update()
        return copy

    # ------------------------------------------------------------------------------------- materials
    def _image(self, path: str) -> "bpy.types.Image":
        if path not in self._images:
            if not Path(path).is_file():
                raise MeshImportError(f"texture {path} does not exist; re-run `python -m pipeline.assets fetch`")
            image = bpy.data.images.load(path, check_existing=True)
            image.use_fake_user = True
            self._images[path] = image
        return self._images[path]

    def _material(self, name: str, spec: MaterialSpec, semantic_id: int) -> "bpy.types.Material":
        mat = compat.new_material(name)
        mat.pass_index = semantic_id
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
        color = (*spec.color, 1.0)
        bsdf.inputs["Base Color"].default_value = color
        bsdf.inputs["Roughness"].default_value = spec.roughness
        if spec.specular is not None:
            compat.principled_input(bsdf, "Specular IOR Level").default_value = spec.specular
        if spec.emission > 0:
            compat.principled_input(bsdf, "Emission Color").default_value = color
            bsdf.inputs["Emission Strength"].default_value = spec.emission
        if spec.texture:
            coords = nodes.new("ShaderNodeTexCoord")
            mapping = nodes.new("ShaderNodeMapping")
            mapping.inputs["Scale"].default_value = (spec.texture_scale,) * 3
            links.new(coords.outputs["Object"], mapping.inputs["Vector"])
            if spec.texture.startswith("procedural:"):
                _, kind, seed = spec.texture.split(":")
                offsets = np.random.default_rng(int(seed)).uniform(-100, 100, size=3)
                mapping.inputs["Location"].default_value = tuple(float(v) for v in offsets)
                node_type = {"noise": "ShaderNodeTexNoise", "checker": "ShaderNodeTexChecker",
                             "wave": "ShaderNodeTexWave", "voronoi": "ShaderNodeTexVoronoi"}[kind]
                tex = nodes.new(node_type)
                links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
                ramp = nodes.new("ShaderNodeValToRGB")
                ramp.color_ramp.elements[0].color = tuple(0.25 * c for c in spec.color) + (1.0,)
                ramp.color_ramp.elements[1].color = color
                factor = tex.outputs["Fac"] if "Fac" in tex.outputs else tex.outputs["Distance"]
                links.new(factor, ramp.inputs["Fac"])
                links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
            else:
                tex = nodes.new("ShaderNodeTexImage")
                tex.image = self._image(spec.texture)
                tex.projection = "BOX"
                tex.projection_blend = 0.2
                links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
                links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        self._sample_data.append(mat)
        return mat

    # --------------------------------------------------------------------------------------- objects
    def _add_object(self, spec: ObjectSpec, instance_id: int, semantic_id: int) -> dict:
        proto = self._prototype(spec.mesh)
        material = None if spec.material.keep_original else self._material(f"{spec.name}_mat", spec.material, semantic_id)
        root = bpy.data.objects.new(spec.name, None)
        self.scene.collection.objects.link(root)
        self._sample_objects.append(root)
        quat = mathutils.Quaternion(spec.quaternion)
        root.matrix_world = mathutils.Matrix.LocRotScale(mathutils.Vector(spec.location), quat,
                                                          mathutils.Vector(spec.scale))
        self._sample_roots.append((root, root.matrix_world.copy()))
        for i, data in enumerate(proto.meshes):
            if spec.mesh.warp > 0:
                data = self._warped(data, spec.mesh.warp, spec.mesh.warp_seed + i)
                self._sample_data.append(data)
            part = bpy.data.objects.new(f"{spec.name}_part{i:02d}", data)
            part.pass_index = instance_id
            for slot in part.material_slots:
                if material is not None:
                    slot.link = "OBJECT"
                    slot.material = material
                elif slot.material is not None:
                    slot.material.pass_index = semantic_id  # shared by all instances of this mesh: same class
            part.parent = root
            self.scene.collection.objects.link(part)
            self._sample_objects.append(part)
        rot = camera_math.quaternion_to_matrix(spec.quaternion)
        centre = np.asarray(spec.location) + rot @ (np.asarray(spec.scale) * proto.bbox.mean(axis=0))
        return {
            "instance_id": instance_id,
            "name": spec.name,
            "class": spec.class_name,
            "class_index": semantic_id - 1,
            "source": spec.mesh.source,
            "rot_mat": rot.tolist(),
            "quaternion": list(spec.quaternion),
            "euler": camera_math.matrix_to_euler_xyz(rot),
            "bbox": proto.bbox.tolist(),
            "scale": list(spec.scale),
            "location": list(spec.location),
            "centroid": centre.tolist(),
        }

    def _new_light(self, spec: LightSpec, name: str) -> "bpy.types.Object":
        """A light object linked into the scene (the caller owns it and its data)."""
        data = bpy.data.lights.new(name, spec.kind)
        data.energy = spec.energy
        data.color = spec.color
        if spec.kind == "SUN":
            data.angle = math.radians(3.0)
        elif hasattr(data, "shadow_soft_size"):
            data.shadow_soft_size = spec.size
        obj = bpy.data.objects.new(name, data)
        obj.matrix_world = mathutils.Matrix(camera_math.look_at(np.asarray(spec.location), np.zeros(3)).tolist())
        self.scene.collection.objects.link(obj)
        return obj

    @staticmethod
    def _light_record(spec: LightSpec) -> dict:
        return {"type": spec.kind, "location": list(spec.location), "energy": spec.energy, "color": list(spec.color)}

    def _add_light(self, spec: LightSpec, index: int) -> dict:
        obj = self._new_light(spec, f"light_{index:02d}")
        self._sample_objects.append(obj)
        self._sample_data.append(obj.data)
        self._sample_lights.append(obj)
        return self._light_record(spec)

    @contextlib.contextmanager
    def _view_light(self, spec: LightSpec | None) -> Iterator[None]:
        """With `spec`, lights the scene by that light alone (the sample's lights hidden) for the duration.

        Cycles' session is dropped on the way in and on the way out, so the view renders from a fresh session of
        its own light set and the next view from a fresh one of the sample's lights. Within one sample a fresh
        session gives the same bytes as a carried one (measured on a rooms sample), so the sample's other views
        are the bytes they would be without this view's light.
        """
        if spec is None:
            yield
            return
        self.drop_cycles_session()
        for obj in self._sample_lights:
            obj.hide_render = True
        light = self._new_light(spec, "view_light")
        try:
            yield
        finally:
            data = light.data
            bpy.data.objects.remove(light, do_unlink=True)
            bpy.data.lights.remove(data)
            for obj in self._sample_lights:
                obj.hide_render = False
            self.drop_cycles_session()

    def _set_world(self, spec: SceneSpec) -> None:
        world = spec.world
        tree = self.scene.world.node_tree
        self._world_background.inputs["Strength"].default_value = world.strength
        self._world_background.inputs["Color"].default_value = (*world.color, 1.0)
        if world.environment:
            if self._world_env is None:
                self._world_env = tree.nodes.new("ShaderNodeTexEnvironment")
            self._world_env.image = self._image(world.environment)
            tree.links.new(self._world_env.outputs["Color"], self._world_background.inputs["Color"])
        elif self._world_env is not None:
            for link in list(self._world_background.inputs["Color"].links):
                tree.links.remove(link)

    # -------------------------------------------------------------------------------------- per sample
    def build(self, spec: SceneSpec) -> dict:
        """Builds the scene; returns the sidecar's "objects", "lights" and "light" entries."""
        start = time.perf_counter()
        # every sample renders from a fresh session, so its pixels do not depend on what this process rendered
        # before (kills and retries)
        self.drop_cycles_session()
        self.clear()
        objects = [self._add_object(o, k + 1, spec.semantic_id(o.class_name)) for k, o in enumerate(spec.objects)]
        lights = [self._add_light(light, k) for k, light in enumerate(spec.lights)]
        self._set_world(spec)
        self.timings["build"] += time.perf_counter() - start
        return {"objects": objects, "lights": lights, "light": lights[0]["location"] if lights else [0.0, 0.0, 0.0]}

    def drop_cycles_session(self) -> None:
        """Frees the Cycles session kept since the last render (switching persistent data off does, an RNA update)."""
        self.scene.render.use_persistent_data = False
        self.scene.render.use_persistent_data = True

    def render_view(self, view: ViewSpec, seed: int, out_path: Path) -> dict:
        """Renders one view into `out_path` (canonical EXR, or PNG) and returns its sidecar record: camera, the
        view's records, and its own light when it has one (it then renders under that light alone)."""
        start = time.perf_counter()
        r = self.rendering
        pose = camera_math.look_at(np.asarray(view.location), np.asarray(view.look_at),
                                   None if view.up is None else np.asarray(view.up))
        self._place_objects(view.object_offset)
        self.camera.matrix_world = mathutils.Matrix(pose.tolist())
        self.camera.data.lens = self.camera.data.sensor_width / (2.0 * math.tan(math.radians(view.fov_deg) / 2.0))
        self.scene.cycles.seed = seed
        suffix = ".exr" if r.render_exr else ".png"
        blender_out = self.work_dir / f"blender_view{suffix}"
        self.scene.render.filepath = str(blender_out)
        build_done = time.perf_counter()
        with redirect_stdout_fd(self.log_path), self._view_light(view.light):
            bpy.ops.render.render(write_still=True)
        rendered = time.perf_counter()
        if r.render_exr:
            passes = view_output.read_blender_exr(blender_out, compat.PASS_NAMES)
            view_output.write_canonical_exr(out_path, view_output.canonical_channels(passes))
            blender_out.unlink()
        else:
            view_output.write_png_without_text(blender_out, out_path)
            blender_out.unlink()
        done = time.perf_counter()
        self.timings["build"] += build_done - start
        self.timings["render_call"] += rendered - build_done
        self.timings["write"] += done - rendered
        K = camera_math.intrinsics(r.resolution, r.resolution, view.fov_deg)
        record = {
            "file": out_path.name,
            "K": K.tolist(),
            "cam_to_world_blender": pose.tolist(),
            "cam_to_world_opencv": camera_math.blender_to_opencv(pose).tolist(),
            "look_at": list(view.look_at),
            "fov_deg": view.fov_deg,
            "viewpoint_gqn": camera_math.gqn_viewpoint(np.asarray(view.location), np.asarray(view.look_at)),
            "viewpoint_xyzyp": camera_math.xyzyp_viewpoint(np.asarray(view.location), np.asarray(view.look_at)),
            "records": records_json(view.records),
        }
        if view.light is not None:
            record["light"] = self._light_record(view.light)
        if view.object_offset is not None:
            record["object_offset"] = list(view.object_offset)
        return record

    def _place_objects(self, offset: tuple[float, float, float] | None) -> None:
        """Moves every object root by `offset` from where the sample put it (None: back there). Only views that
        carry an offset touch the objects, so samples without offsets render exactly as before."""
        if offset is None and not self._roots_moved:
            return
        shift = mathutils.Vector(offset or (0.0, 0.0, 0.0))
        for root, placed in self._sample_roots:
            moved = placed.copy()
            moved.translation = placed.translation + shift
            root.matrix_world = moved
        self._roots_moved = offset is not None

    def clear(self) -> None:
        """Removes everything the last sample added, then purges orphan data blocks."""
        start = time.perf_counter()
        for obj in self._sample_objects:
            bpy.data.objects.remove(obj, do_unlink=True)
        for block in self._sample_data:
            collection = {bpy.types.Material: bpy.data.materials, bpy.types.Mesh: bpy.data.meshes}
            for kind, store in collection.items():
                if isinstance(block, kind):
                    store.remove(block)
                    break
            else:
                if block.users == 0:
                    bpy.data.lights.remove(block)
        self._sample_objects.clear()
        self._sample_data.clear()
        self._sample_lights.clear()
        self._sample_roots.clear()
        self._roots_moved = False
        bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=True, do_recursive=True)
        self.timings["clear"] += time.perf_counter() - start
