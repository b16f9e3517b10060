"""`make demo`: the main job end to end on a small default.

render (distributed over every core) -> consolidate to HDF5 -> validate -> contact sheet -> train GQN a few
minutes -> novel-view picture. Each step is the project's own CLI, run as a subprocess, so the demo exercises
exactly what a user types.
"""

import argparse
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import paths

logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


def _run(step: str, args: list[str]) -> None:
    logger.info("[%s] %s", step, " ".join(args))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"demo: step '{step}' failed with exit code {proc.returncode}; see its output above")
    logger.info("[%s] done in %.1f s", step, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="demo_rooms",
                        help="dataset gin file in config/ and dataset name (falls back to demo_objects if absent)")
    parser.add_argument("--scenes", type=int, default=240, help="scenes to render")
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="training budget in minutes (enough for walls, floor and object blobs to appear)")
    parser.add_argument("--steps", type=int, default=5000, help="training steps at most")
    parser.add_argument("--fresh", action="store_true", help="delete an earlier demo dataset and run first")
    parser.add_argument("--clean", action="store_true", help="only delete the demo dataset and run, then stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    name = args.name if (paths.CONFIG_DIR / f"{args.name}.gin").is_file() else "demo_objects"
    dataset, run = paths.DATA_DIR / name, paths.RUNS_DIR / f"demo_{name}"
    if args.fresh or args.clean:
        shutil.rmtree(dataset, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        if args.clean:
            print(f"deleted {dataset} and {run}")
            return 0
    if (REPO / "distributed_render.py").is_file():
        _run("render", ["distributed_render.py", "-d", name, "-g", name, "-n", str(args.scenes), "-b", "8", "-c"])
    else:
        _run("render", ["render.py", "--", "-d", name, "-g", name, "--count", str(args.scenes)])
    _run("consolidate", ["preprocess_data.py", "-d", name, "-f", "-e"])
    _run("validate", ["preprocess_data.py", "-d", name, "--validate"])
    _run("contact sheet", ["preprocess_data.py", "-d", name, "--show", "4"])
    shutil.rmtree(run, ignore_errors=True)
    _run("train", ["-m", "train", "fit", "-g", "train/gqn_cpu.gin", "--data", str(dataset), "--run", str(run),
                   "-p", f"fit.max_steps = {args.steps}", "-p", f"fit.max_minutes = {args.minutes}"])
    _run("novel views", ["-m", "train", "render", "--run", str(run), "--data", str(dataset)])
    pictures = sorted(str(p) for p in (*dataset.glob("*.png"), *(run / "render").glob("*.png"), *(run / "render").glob("*.gif")))
    print("demo finished; pictures:\n  " + "\n  ".join(pictures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
