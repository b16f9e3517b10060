"""Parses gin files and bindings for the CLIs, with errors that name the bad binding."""

import importlib.util  # noqa: F401  (gin resolves `include` through it without importing it)
from pathlib import Path

import gin


class ConfigError(ValueError):
    """A gin file or binding is wrong; the message names it and how to fix it."""


def resolve_gin_file(name: str, config_dir: Path) -> Path:
    """`-g render_multi`, `-g render_multi.gin` and `-g path/to/file.gin` all work."""
    candidates = [Path(name), config_dir / name, config_dir / f"{name}.gin"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    available = sorted(str(p.relative_to(config_dir))[:-4] for p in config_dir.rglob("*.gin"))
    raise ConfigError(f"gin file {name!r} not found (looked in {config_dir}); available: {', '.join(available)}")


def parse_gin(gin_files: list[str], bindings: list[str], config_dir: Path) -> list[Path]:
    """Clears gin, then parses `gin_files` and `bindings` (bindings win). Returns the resolved files.

    Raises:
        ConfigError: unknown file, configurable or parameter, or a malformed binding.
    """
    gin.clear_config()
    gin.add_config_file_search_path(str(config_dir))
    files = [resolve_gin_file(name, config_dir) for name in gin_files]
    try:
        gin.parse_config_files_and_bindings([str(f) for f in files], bindings, skip_unknown=False)
    except (ValueError, KeyError, SyntaxError, TypeError, OSError) as err:
        raise ConfigError(
            f"bad gin config ({_first_line(err)}) in files {[f.name for f in files]} / bindings {bindings}; "
            "check the spelling against the configurables documented in render/settings.py"
        ) from err
    _check_settings()
    return files


def _check_settings() -> None:
    """Builds every settings class once, so a value of the wrong type or range fails here, naming its binding,
    before Blender or Ray start (render.settings checks types and ranges when a class is built)."""
    from render import settings  # here: settings imports nothing heavy, but gin_setup must stay import-light

    for cls in (settings.RenderingSettings, settings.MaterialSettings, settings.LightingSettings,
                settings.ObjectSettings, settings.SampleSettings, settings.BatchSettings, settings.DatasetSettings):
        try:
            cls()
        except (ValueError, TypeError) as err:
            raise ConfigError(_first_line(err)) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
