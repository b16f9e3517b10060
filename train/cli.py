"""Command line of the trainer: `python -m train {fit,evaluate,render}` (also `train.cli.main(argv)`).

Configuration comes from gin files (`-g`, default `config/train/gqn_cpu.gin` for a new `fit`) and bindings
(`-p`, applied after the files). A misspelt configurable or parameter fails before anything runs. `fit --resume`
without `-g` re-reads the run's own `operative_config.gin`. `evaluate` and `render` rebuild the model from the
checkpoint, so they need no gin file; `-p` still sets their own options (e.g. `-p 'evaluate.max_scenes=100'`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gin
import paths
import torch

from train import checkpoint as ckpt
from train.data import DatasetError
from train.evaluation import evaluate
from train.novel_views import render_views
from train.threads import pick_threads
from train.trainer import NonFiniteLossError, RunFolderError, fit

logger = logging.getLogger(__name__)

DEFAULT_GIN = "train/gqn_cpu.gin"


class ConfigError(ValueError):
    """A gin file or binding is wrong (unknown name, bad value, missing file)."""


def _gin_file(name: str) -> Path:
    """A gin file as given, or relative to CONFIG_DIR (e.g. `train/gqn_cpu.gin`)."""
    for candidate in (Path(name), paths.CONFIG_DIR / name):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"gin file {name!r} not found (looked at ./{name} and {paths.CONFIG_DIR / name})")


def parse_gin(files: Sequence[str | Path], bindings: Sequence[str]) -> None:
    """Clear gin and parse `files` then `bindings`; unknown configurables or parameters raise `ConfigError`."""
    gin.clear_config()
    resolved = [str(_gin_file(str(f))) for f in files]
    try:
        gin.parse_config_files_and_bindings(resolved, list(bindings), finalize_config=False, skip_unknown=False)
    except (ValueError, KeyError, SyntaxError, TypeError) as exc:
        raise ConfigError(f"bad gin config (files {resolved}, bindings {list(bindings)}): {exc}") from exc


def _data_dir(value: str) -> Path:
    """`--data`: a folder path, or a dataset NAME under DATA_DIR."""
    path = Path(value)
    if not path.is_dir() and (paths.DATA_DIR / value).is_dir():
        path = paths.DATA_DIR / value
    if not path.is_dir():
        raise DatasetError(f"--data {value}: no such folder (nor {paths.DATA_DIR / value}); give the dataset folder "
                           "holding scenes_train.h5 / scenes_val.h5 / scenes_test.h5")
    return path


def _trained_data_dir(run: Path, data: str | None) -> Path:
    """`--data` if given, else the folder the run was trained on (recorded in its checkpoint)."""
    if data:
        return _data_dir(data)
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))
    return _data_dir(state["data"]["dir"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train, evaluate and render neural scene models (GQN, ENR, RenderNet) on scene-major HDF5.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-g", "--gin", action="append", default=[], metavar="FILE",
                       help="gin file (repeatable); a path, or relative to CONFIG_DIR, e.g. train/gqn_cpu.gin")
        p.add_argument("-p", "--bind", action="append", default=[], metavar="BINDING",
                       help="gin binding applied after the files (repeatable), e.g. 'fit.max_steps=50'")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        p.add_argument("--threads", type=int, default=0,
                       help="torch CPU threads (default 0: the cores idle at start, shared by torchrun's local processes); "
                            "their OpenMP wait policy is passive unless OMP_WAIT_POLICY is set, so a busy machine "
                            "costs only its share of the cores")

    f = sub.add_parser("fit", help="train a model", description="Train a model; checkpoints and logs go to --run.")
    common(f)
    f.add_argument("--data", required=True, help="dataset folder with scenes_train.h5 (or a NAME under DATA_DIR)")
    f.add_argument("--run", "--run-dir", dest="run",
                   help="run folder for checkpoints, TensorBoard and configs (default RUNS_DIR/<dataset>_<timestamp>);"
                        " under torchrun write --run-dir (torchrun's own parser takes --run for its --run-path)")
    f.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --run (without -g, reuse the run's operative config)")
    f.add_argument("--init-from", metavar="CHECKPOINT",
                   help="start from this checkpoint's weights only (same model and sizes): new optimiser, "
                        "learning-rate schedule and step count, e.g. to fine-tune on real captures")
    f.add_argument("--mix", metavar="DATASET",
                   help="mix scenes of this dataset (folder or NAME under DATA_DIR, its scenes_train.h5) into every "
                        "batch, e.g. the synthetic set a model was pretrained on while fine-tuning on real captures "
                        "(binds fit.mix_data)")
    f.add_argument("--mix-ratio", type=float, metavar="R",
                   help="share of each batch taken from --mix, strictly between 0 and 1 (default 0.25; binds "
                        "fit.mix_ratio)")

    e = sub.add_parser("evaluate", help="PSNR/SSIM/MSE on held-out scenes, with baselines, to JSON",
                       description="Evaluate a run's checkpoint; writes RUN/eval_<split>.json.")
    common(e)
    e.add_argument("--run", "--run-dir", dest="run", required=True, help="run folder written by fit")
    e.add_argument("--data", help="dataset folder (default: the one the run was trained on)")
    e.add_argument("--split", choices=["train", "val", "test"], help="split to evaluate (default test)")
    e.add_argument("--checkpoint", help="checkpoint file (default: the run's newest)")
    e.add_argument("--save-predictions", action="store_true",
                   help="also write RUN/eval_<split>_predictions.npz and a .png of the first queries")

    r = sub.add_parser("render", help="novel views of a scene (GQN ring, ENR turn, RenderNet --rotate): PNG and GIF",
                       description="Render a held-out scene with a trained run; writes RUN/render/. GQN: a ring of "
                                   "viewpoints; ENR: the scene turning from one source image; RenderNet: --rotate "
                                   "turns the object 360 degrees under the given camera and light.")
    common(r)
    r.add_argument("--run", "--run-dir", dest="run", required=True, help="run folder written by fit")
    r.add_argument("--data", help="dataset folder (default: the one the run was trained on)")
    r.add_argument("--split", choices=["train", "val", "test"], help="split to take the scene from (default test)")
    r.add_argument("--scene", type=int, help="row of the scene in the split (default 0)")
    r.add_argument("--frames", type=int, help="frames on the ring (default 24)")
    r.add_argument("--out", help="output folder (default RUN/render)")
    r.add_argument("--rotate", action="store_true",
                   help="RenderNet: turn the object 360 degrees into a GIF (ENR always turns its scene)")
    r.add_argument("--azimuth", type=float, help="RenderNet: start azimuth of the camera, degrees (default 0)")
    r.add_argument("--elevation", type=float, help="RenderNet: camera elevation, degrees (default 30)")
    r.add_argument("--light_azimuth", type=float, help="RenderNet: azimuth towards the light, degrees (default 45)")
    r.add_argument("--light_elevation", type=float, help="RenderNet: elevation towards the light, degrees (default 45)")
    r.add_argument("--radius", type=float, help="RenderNet: camera distance, metres (default 3.3)")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "fit":
        data = _data_dir(args.data)
        run = Path(args.run) if args.run else paths.RUNS_DIR / f"{data.name}_{time.strftime('%Y%m%d-%H%M%S')}"
        files = args.gin
        if not files:
            files = [run / "operative_config.gin"] if args.resume else [DEFAULT_GIN]
            logger.info("no -g given: using %s", files[0])
        bindings = list(args.bind)
        if args.mix_ratio is not None and not args.mix:
            raise ConfigError("--mix-ratio needs --mix DATASET (the data to mix in)")
        if args.mix:  # as bindings, so the run's operative config (and --resume) keeps them
            bindings.append(f"fit.mix_data = {str(_data_dir(args.mix).resolve())!r}")
        if args.mix_ratio is not None:
            bindings.append(f"fit.mix_ratio = {args.mix_ratio!r}")
        parse_gin(files, bindings)
        extra = {"init_from": args.init_from} if args.init_from else {}
        result = fit(data, run, resume=args.resume, **extra)
        last = result["history"][-1] if result["history"] else {}
        print(f"trained to step {result['step']} in {run}; last logged: {last}")
        return 0
    parse_gin(args.gin, args.bind)
    run = Path(args.run)
    data = _trained_data_dir(run, args.data)
    if args.command == "evaluate":
        kwargs = {k: v for k, v in {"split": args.split, "checkpoint": args.checkpoint}.items() if v}
        if args.save_predictions:
            kwargs["save_predictions"] = True
        result = evaluate(run, data, **kwargs)
        print(f"{result['split']} ({result['num_scenes']} scenes, step {result['step']}):")
        for name, m in {**result["metrics"], **result["baselines"]}.items():
            print(f"  {name:22s} PSNR {m['psnr']:6.2f} dB  SSIM {m['ssim']:.3f}  MSE {m['mse']:.5f}")
        before = result.get("before_fine_tuning")
        if before:
            print(f"before fine-tuning ({before['checkpoint']}, step {before['step']}):")
            for name, m in before["metrics"].items():
                print(f"  {name:22s} PSNR {m['psnr']:6.2f} dB  SSIM {m['ssim']:.3f}  MSE {m['mse']:.5f}")
        return 0
    if args.command == "render":
        kwargs = {k: v for k, v in {"split": args.split, "scene": args.scene, "num_frames": args.frames,
                                    "out_dir": args.out, "azimuth": args.azimuth, "elevation": args.elevation,
                                    "light_azimuth": args.light_azimuth, "light_elevation": args.light_elevation,
                                    "radius": args.radius}.items() if v is not None}
        if args.rotate:
            kwargs["rotate"] = True
        written = render_views(run, data, **kwargs)
        print("wrote " + " and ".join(written.values()))
        return 0
    raise ValueError(f"unknown command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 non-finite loss, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    previous_threads = torch.get_num_threads()  # restored on return, for callers of main() in-process (tests)
    torch.set_num_threads(pick_threads(args.threads))
    try:
        return _run(args)
    except (ConfigError, DatasetError, ckpt.CheckpointError, RunFolderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a bad option value met inside a configurable; -v shows where
        if args.verbose:
            logger.exception("bad value")
        print(f"error: {exc} (check the gin bindings and options; -v for the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; a checkpoint of the last finished step was saved", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(previous_threads)
