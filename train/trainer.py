"""The training loop: `fit -> Trainer.fit -> _train_loop -> _train_iteration -> _optimizer_step`.

A run folder holds `operative_config.gin`, `metrics.jsonl` (one JSON line per logged step), `checkpoints/` and
`tensorboard/`. Periodic actions (log, pictures, checkpoint) run on step checks. Each step's batch, view choice
and latent noise are functions of (seed, step), so `resume` continues the same loss curve bit for bit and a
DDP run of W processes (`torchrun`) trains on the same global batches as one process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import gin
import torch
from core import publish
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from train import checkpoint as ckpt
from train import growing
from train.data import Batch, DatasetError, MixedDataset, SceneBatchSampler, make_loader, split_path
from train.distributed import DistInfo, all_reduce_mean, init_distributed, shutdown
from train.families import family_for
from train.losses import linear_anneal
from train.models import SceneModel, build_model

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stops with the step, the loss terms and what to try."""


class RunFolderError(RuntimeError):
    """The run folder is in a state that the requested command cannot use (e.g. checkpoints but no --resume)."""


@gin.configurable(denylist=["params"])
def make_optimizer(
    params: Any,
    lr_initial: float = 5e-4,
    lr_final: float = 5e-5,
    lr_anneal_steps: int = 1_600_000,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam with the GQN paper's learning-rate annealing.

    Args:
        params: the parameters to optimise.
        lr_initial, lr_final: learning rate at step 0 and from `lr_anneal_steps` on (paper: 5e-4 -> 5e-5).
        lr_anneal_steps: steps of the linear ramp (paper: 1.6M).
        beta1, beta2, eps: Adam's.
    Returns:
        (optimizer, scheduler); call `scheduler.step()` after each optimiser step.
    """
    opt = torch.optim.Adam(params, lr=lr_initial, betas=(beta1, beta2), eps=eps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: linear_anneal(s, lr_initial, lr_final, lr_anneal_steps) / lr_initial
    )
    return opt, sched


def image_grid(rows: list[torch.Tensor]) -> torch.Tensor:
    """Tile rows of images: each (N, 3, H, W) -> one (3, rows * H, N * W) image."""
    return torch.cat([torch.cat(list(r.clamp(0, 1).float().cpu()), dim=2) for r in rows], dim=1)


def _write_text_atomic(path: Path, text: str) -> None:
    publish.write_text(path, text)


def _resolve_device(device: str, info: DistInfo | None = None) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and info is not None and info.enabled:
        return torch.device("cuda", info.local_rank)
    return torch.device(device)


class Trainer:
    """One training run (see `fit` for the arguments)."""

    def __init__(self, data_dir: Path, run_dir: Path, resume: bool, **settings: Any) -> None:
        self.data_dir, self.run_dir, self.resume = Path(data_dir), Path(run_dir), resume
        self.s = settings
        if settings["precision"] not in ("fp32", "bf16"):
            raise ValueError(f"fit.precision must be 'fp32' or 'bf16', got {settings['precision']!r}")
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._last_saved = -1
        self._init_from: str | None = None  # a resumed fine-tuning run keeps the checkpoint it started from

    # --- setup ---------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        s = self.s
        requested = _resolve_device(s["device"])
        self.info = init_distributed(requested.type)
        self.device = _resolve_device(s["device"], self.info)
        self.is_main = self.info.is_main
        torch.manual_seed(s["seed"])  # weight init; DDP also broadcasts rank 0's weights
        self.family = family_for(s["model_name"])
        model = build_model(s["model_name"])
        self.dataset = self.family.make_dataset(split_path(self.data_dir, "train"), model)
        self.model: SceneModel = model.to(self.device)
        self.optimizer, self.scheduler = make_optimizer(self.model.parameters())
        self.context_range = self.family.context_range(self.dataset, s["min_context"], s["max_context"])
        self.mix_dataset, self.mix_items = None, 0
        if s["mix_data"]:
            self._setup_mixing(model)

        existing = ckpt.list_checkpoints(self.run_dir)
        if self.resume and s["init_from"]:
            raise RunFolderError("--resume continues a run with its optimiser; --init-from starts a new one from "
                                 "another run's weights: pass one of them")
        if self.resume:
            self._restore(ckpt.latest_checkpoint(self.run_dir))
        elif existing:
            raise RunFolderError(
                f"{self.run_dir} already holds checkpoints (newest {existing[-1].name}); pass --resume to continue "
                "it, or choose a new --run folder"
            )
        elif s["init_from"]:
            self._init_weights(Path(s["init_from"]))
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _write_text_atomic(self.run_dir / "operative_config.gin", gin.operative_config_str())
            self._trim_metrics_log()
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step)
        self.train_model: torch.nn.Module = self.model
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        if s["compile_model"]:
            self.train_model = torch.compile(self.train_model)
        self.autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16) if s["precision"] == "bf16"
            else contextlib.nullcontext()
        )
        n_params = sum(p.numel() for p in self.model.parameters())
        logger.info("model %s: %d parameters; %d train scenes of %d views at %d px; rank %d of %d on %s",
                    s["model_name"], n_params, len(self.dataset), self.dataset.num_views, self.dataset.image_size,
                    self.info.rank, self.info.world_size, self.device)

    def _setup_mixing(self, model: SceneModel) -> None:
        """`fit.mix_data`: the second dataset, its share of every batch, and context counts both allow."""
        s = self.s
        if s["grow_every"]:
            raise ValueError("fit.mix_data and fit.grow_every cannot be combined: a growing dataset is followed alone; "
                             "mix once the render has finished (fit.grow_every = 0)")
        if not 0.0 < s["mix_ratio"] < 1.0:
            raise ValueError(f"fit.mix_ratio = {s['mix_ratio']} must lie strictly between 0 and 1 (the share of each "
                             "batch taken from fit.mix_data)")
        self.mix_items = round(s["mix_ratio"] * s["batch_size"])
        if not 1 <= self.mix_items <= s["batch_size"] - 1:
            raise ValueError(f"fit.mix_ratio = {s['mix_ratio']} of fit.batch_size = {s['batch_size']} gives "
                             f"{self.mix_items} mixed items a batch; choose a ratio giving 1 to {s['batch_size'] - 1}")
        mix_dir = Path(s["mix_data"])
        if mix_dir.resolve() == self.data_dir.resolve():
            raise DatasetError(f"fit.mix_data {mix_dir} is the training data itself; mix in another dataset")
        self.mix_dataset = self.family.make_dataset(split_path(mix_dir, "train"), model)
        lo, hi = self.context_range
        mix_lo, mix_hi = self.family.context_range(self.mix_dataset, self.s["min_context"], self.s["max_context"])
        self.context_range = (max(lo, mix_lo), min(hi, mix_hi))
        if self.context_range[0] > self.context_range[1]:
            raise DatasetError(f"{self.mix_dataset.path} ({self.mix_dataset.num_views} views) and {self.dataset.path} "
                               f"({self.dataset.num_views} views) allow no common number of context views")
        logger.info("mixing %d of every %d items from %s (%d scenes); context views %s", self.mix_items,
                    s["batch_size"], self.mix_dataset.path, len(self.mix_dataset), self.context_range)

    def _checked_state(self, path: Path) -> dict[str, Any]:
        """A checkpoint of this run's model name with weights of this model's shapes, else `RunFolderError`."""
        state = ckpt.load_checkpoint(path)
        if state.get("model_name") != self.s["model_name"]:
            raise RunFolderError(f"{path} holds a {state.get('model_name')!r} model, the config asks for "
                                 f"{self.s['model_name']!r}")
        mine = self.model.state_dict()
        wrong = [k for k, v in state["model"].items() if k not in mine or mine[k].shape != v.shape]
        wrong += [k for k in mine if k not in state["model"]]
        if wrong:
            raise RunFolderError(
                f"{path}: its {state['model_name']} weights do not fit this config's model ({len(wrong)} tensors "
                f"differ, e.g. {wrong[:3]}); its model_config was {state.get('model_config')}: bind the same sizes"
            )
        return state

    def _init_weights(self, path: Path) -> None:
        """`fit --init-from`: weights only; a new optimiser, schedules and step count (fine-tuning, transfer)."""
        state = self._checked_state(path)
        self.model.load_state_dict(state["model"])
        logger.info("initialised weights from %s (its step %d); optimiser and step count start afresh",
                    path, int(state["step"]))

    def _restore(self, path: Path) -> None:
        state = self._checked_state(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = self._last_saved = int(state["step"])
        self._init_from = state.get("init_from")
        self.model.set_step(self.step)
        ckpt.set_rng_state(state["rng"])
        logger.info("resumed from %s at step %d", path, self.step)

    def _trim_metrics_log(self) -> None:
        """Drop lines of steps not yet done (a run that died after its last checkpoint logged beyond it)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        kept = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= self.step]
        _write_text_atomic(path, "".join(ln + "\n" for ln in kept))

    # --- loop ----------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train until `max_steps`; checkpoint periodically and at exit (also on Ctrl-C)."""
        self._setup()
        s = self.s
        sampler = SceneBatchSampler(
            len(self.dataset), self.dataset.num_views, s["batch_size"], *self.context_range, seed=s["seed"],
            start_step=self.step, max_steps=s["max_steps"], rank=self.info.rank, world_size=self.info.world_size,
            mix_scenes=len(self.mix_dataset) if self.mix_dataset is not None else 0, mix_items=self.mix_items,
        )
        data = self.dataset if self.mix_dataset is None else MixedDataset(self.dataset, self.mix_dataset)
        if s["grow_every"]:  # a dataset still rendering: follow it as it grows (train/growing.py)
            sampler, data = growing.follow(self.dataset, sampler, s["grow_every"])
        self.sampler = sampler
        loader = make_loader(data, sampler, s["num_workers"], pin_memory=self.device.type == "cuda")
        try:
            self._train_loop(loader)
        except KeyboardInterrupt:
            logger.warning("interrupted at step %d; saving a checkpoint", self.step)
            self._save()
            raise
        finally:
            if self.is_main:
                self.writer.close()
        self._save()
        shutdown(self.info)
        return {"run_dir": str(self.run_dir), "step": self.step, "history": self.history}

    def _train_loop(self, loader: torch.utils.data.DataLoader) -> None:
        """Iterate over the loader's batches (one per step) and run the periodic actions on step checks."""
        s = self.s
        bar = tqdm(total=s["max_steps"], initial=self.step, disable=not (s["progress"] and self.is_main),
                   desc="fit", unit="step", dynamic_ncols=True)
        start = time.monotonic()
        with bar:
            for batch in loader:
                values = self._train_iteration(batch)
                self.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.1f}", mse=f"{values['mse']:.4f}")
                if self.step % s["log_every"] == 0 or self.step == s["max_steps"]:
                    self._log(values)
                if s["image_every"] and self.step % s["image_every"] == 0 and self.is_main:
                    self._log_images()
                if s["checkpoint_every"] and self.step % s["checkpoint_every"] == 0:
                    self._save()
                if s["max_minutes"] and self._out_of_time(start):
                    logger.info("time budget of %g min used up at step %d", s["max_minutes"], self.step)
                    if self.step % s["log_every"]:
                        self._log(values)
                    break

    def _out_of_time(self, start: float) -> bool:
        """Whether the wall-clock budget is spent (decided by rank 0, so all processes stop at the same step)."""
        flag = torch.tensor([float(time.monotonic() - start > 60 * self.s["max_minutes"])])
        if self.info.enabled:
            torch.distributed.broadcast(flag, src=0)
        return bool(flag.item())

    def _train_iteration(self, batch: Batch) -> dict[str, float]:
        """One step on this process's part of the global batch.

        Args:
            batch: context_images (B, K, 3, H, W), context_viewpoints (B, K, 7), query_image (B, 3, H, W),
                query_viewpoint (B, 7), scene (B,), noise_seed (B,), with B = global batch / processes.
        Returns:
            loss terms averaged over all processes, their sum `loss`, `mse`, `lr` and the schedules.
        """
        self.model.train()
        self.model.set_step(self.step)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with self.autocast:
            out = self.train_model(batch)
        terms = out["losses"]
        loss = torch.stack([t.float() for t in terms.values()]).sum()
        names = [*terms, "loss", "mse"]
        reduced = all_reduce_mean(torch.stack([*(t.detach().float() for t in terms.values()), loss.detach(),
                                               out["mse"].detach().float()]), self.info).tolist()
        values = dict(zip(names, reduced, strict=True))
        if not all(math.isfinite(v) for v in values.values()):
            last = ckpt.latest_checkpoint(self.run_dir) if ckpt.list_checkpoints(self.run_dir) else None
            saved = (f"the last checkpoint, {last}, is from before it" if last is not None
                     else f"no checkpoint was written yet in {ckpt.checkpoint_dir(self.run_dir)}")
            raise NonFiniteLossError(
                f"step {self.step}: loss is not finite ({values}). Training stopped; {saved}. Try a lower "
                "make_optimizer.lr_initial, fit.precision='fp32', fit.grad_clip, or check the data for bad "
                "images/viewpoints."
            )
        values["lr"] = self.optimizer.param_groups[0]["lr"]
        values.update(self.model.schedule_state())
        self._optimizer_step(loss)
        return values

    def _optimizer_step(self, loss: torch.Tensor) -> None:
        """Backward (DDP averages gradients over processes), optional clipping, Adam step, lr schedule step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.s["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.s["grad_clip"])
        self.optimizer.step()
        self.scheduler.step()

    # --- periodic actions ----------------------------------------------------------------------------------
    def _log(self, values: dict[str, float]) -> None:
        record = {"step": self.step, **values}
        self.history.append(record)
        if not self.is_main:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"train/{k}", v, self.step)
        if "mse" in values:  # what this PSNR measures is the family's (GQN: the posterior reconstruction)
            self.writer.add_scalar(self.family.train_psnr_tag, 10 * math.log10(1 / max(values["mse"], 1e-10)), self.step)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _log_images(self, n: int = 4) -> None:
        """TensorBoard grid of a fixed batch, as the family draws it (GQN: context | truth | each mode)."""
        self.model.eval()
        with self.autocast, torch.no_grad():
            tag, rows = self.family.picture(self.model, self.dataset, self.s["seed"], self.context_range, n)
        self.writer.add_image(tag, image_grid(rows), self.step)
        self.model.train()

    def _save(self) -> None:
        if self.step == self._last_saved:
            return
        self._last_saved = self.step
        if not self.is_main:
            return
        ckpt.save_checkpoint(self.run_dir, {
            "step": self.step,
            "model_name": self.s["model_name"],
            "model_config": self.model.config,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "annealer": self.model.schedule_state(),
            "rng": ckpt.rng_state(),
            "sampler": self.sampler.state_dict(),
            "data": {"dir": str(self.data_dir.resolve()),
                     **self.family.data_state(self.dataset, self.context_range), **self._mix_state()},
            **self._init_state(),
            "config": gin.operative_config_str(),
        }, keep=self.s["keep_checkpoints"])

    def _mix_state(self) -> dict[str, Any]:
        """`data.mix` of a checkpoint, only in runs that mix (checkpoints of other runs keep their old keys)."""
        if self.mix_dataset is None:
            return {}
        return {"mix": {"dir": str(Path(self.s["mix_data"]).resolve()), "ratio": self.s["mix_ratio"],
                        "items": self.mix_items}}

    def _init_state(self) -> dict[str, Any]:
        """`init_from` of a checkpoint, only in runs started with --init-from (kept through their resumes)."""
        start = str(Path(self.s["init_from"]).resolve()) if self.s["init_from"] else self._init_from
        return {"init_from": start} if start else {}


@gin.configurable(denylist=["data_dir", "run_dir", "resume"])
def fit(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    resume: bool = False,
    model_name: str = "gqn",
    max_steps: int = 1000,
    max_minutes: float = 0.0,
    batch_size: int = 16,
    min_context: int = 1,
    max_context: int = 5,
    seed: int = 0,
    num_workers: int = 0,
    log_every: int = 10,
    image_every: int = 500,
    checkpoint_every: int = 500,
    keep_checkpoints: int = 3,
    precision: str = "fp32",
    compile_model: bool = False,
    grad_clip: float = 0.0,
    device: str = "auto",
    progress: bool = True,
    init_from: str | None = None,
    grow_every: int = 0,
    mix_data: str | None = None,
    mix_ratio: float = 0.25,
) -> dict[str, Any]:
    """Train a model on `DATA_DIR/scenes_train.h5`, writing into `run_dir`.

    Args:
        data_dir: dataset folder holding `scenes_train.h5`.
        run_dir: output folder (checkpoints, TensorBoard, metrics.jsonl, operative_config.gin).
        resume: continue from the newest checkpoint in `run_dir`.
        model_name: registered model (`train.models.model_names()`).
        max_steps: stop after this many optimiser steps (counted from the start of the run, not of a resume).
        max_minutes: also stop once this much wall-clock time is spent in the loop (0: no limit).
        batch_size: global batch (split evenly over DDP processes).
        min_context, max_context: GQN: range of context views per step (drawn per step; capped at views - 1).
            ENR always takes pairs of views and RenderNet single views (their families ignore these).
        seed: seed of weights, batches, view choices and latent noise.
        num_workers: DataLoader worker processes (0 reads in the training process).
        log_every: steps between scalar logs (TensorBoard, metrics.jsonl).
        image_every: steps between TensorBoard image grids (0: never).
        checkpoint_every: steps between checkpoints (one is also written at exit).
        keep_checkpoints: newest checkpoints kept.
        precision: "fp32" or "bf16" (autocast; for GPUs with bf16 support).
        compile_model: wrap the model in torch.compile (helps on GPU; slow to start).
        grad_clip: clip the gradient norm to this value (0: off).
        device: "auto" (cuda if available), "cpu" or "cuda".
        progress: show a tqdm progress bar.
        init_from: a checkpoint whose weights start this run (same model name and sizes); unlike `resume`
            the optimiser, learning-rate schedule and step count start afresh (`fit --init-from`); `evaluate`
            then also reports that checkpoint on the same scenes ("before fine-tuning").
        mix_data: a second dataset folder (its `scenes_train.h5`) mixed into every batch, e.g. the synthetic scenes
            a model was pretrained on while it fine-tunes on real captures (`fit --mix`); None: no mixing. Its
            images must pool to the same `SceneDataset.image_size`; context counts are capped by both view counts.
        mix_ratio: share of every global batch taken from `mix_data` (round(mix_ratio * batch_size) items, at
            positions drawn from (seed, step); strictly between 0 and 1).
        grow_every: train on a dataset that is still rendering (distributed_render.py keeps its split files up to
            date): look for more scenes every this many steps and at each epoch's end (0: the file is fixed).
    Returns:
        {"run_dir", "step", "history": [{"step", "nll", "kl", "loss", "mse", "lr", ...}, ...]}.
    """
    settings = {k: v for k, v in locals().items() if k not in ("data_dir", "run_dir", "resume")}
    return Trainer(Path(data_dir), Path(run_dir), resume, **settings).fit()
