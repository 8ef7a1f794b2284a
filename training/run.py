"""The run scaffold every training loop stands on: its config, device and precision, checkpoints, log, time
limit, signals, DDP and progress bar. The VAE loop (train.py), InfoGAN's (infogan.py) and the judge's
(judge/train.py) each build their model and take steps; everything around the steps is here.

    run = Run(cfg, launch)                  # device, DDP, the checkpoint to resume from: nothing written yet
    ...                                     # build the model, load run.state when resuming
    with run.started():                     # refuse or clear the folder, config.json, the log, signal handlers
        for step in run.steps():            # ends early on SIGTERM/SIGINT or the time limit, after that step
            ...
            run.end_step(images, terms, lr=lr)
            if run.checkpoint_due:
                run.save({"model": model.state_dict(), ...})

A run folder holds config.json, log.jsonl (one record per log window) and checkpoint.pt. A checkpoint is written
every ``checkpoint_every`` steps, every ``checkpoint_minutes`` minutes, at the end and when a signal or the time
limit stops the run, always atomically (temporary file, fsync, rename): a kill at any moment leaves the last
good checkpoint loadable. A resumed run drops the log records past its checkpoint, so no step is logged twice.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, Self

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from training.checkpoints import (
    CHECKPOINT,
    CONFIG,
    LOG,
    holds_run,
    load_checkpoint,
    read_log,
    write_checkpoint,
    write_text_atomically,
)

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class RunConfig:
    """The settings every training loop shares: what it draws, how long and on what it runs, how often it logs
    and saves. Each family's config adds its model's and objective's settings."""

    dataset: str = "dsprites"
    batch_size: int = 64
    steps: int = 10_000
    seed: int = 0
    time_limit_min: float = 0.0  # when > 0, stop (with a checkpoint) after this many minutes; resume later
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 (autocast on the networks; the losses stay fp32)
    log_every: int = 50
    checkpoint_every: int = 1000
    checkpoint_minutes: float = 5.0  # a checkpoint at least this often, whatever checkpoint_every says

    # Settings a resumed run may change without --override: how long, where and how it runs and reports, never
    # what it learns. (A longer run draws the same steps as before up to the old end; see learning_rate.)
    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"steps", "time_limit_min", "device", "precision", "log_every", "checkpoint_every", "checkpoint_minutes"}
    )
    # Settings that say how a run is carried out, not what it learns: they never reach a manifest.
    BOOKKEEPING: ClassVar[frozenset[str]] = RESUMABLE - {"steps"} | {"dataset"}

    def __post_init__(self) -> None:
        for name in ("batch_size", "steps", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("time_limit_min", "checkpoint_minutes"):
            value = getattr(self, name)
            if not value >= 0 or math.isinf(value):  # also NaN
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def run_dir(self) -> Path:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """What the progress bar calls the run."""
        return f"{type(self).__name__} {self.dataset}"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}{cls.scope()}; valid keys: {sorted(known)}")
        return cls(**values)

    @classmethod
    def scope(cls) -> str:
        """Named in the unknown-keys error, e.g. " for objective 'infogan'"."""
        return ""

    def learning_settings(self) -> dict[str, str | int | float | bool]:
        """The settings that shape what the run learns, by the rule: every scalar setting but the bookkeeping
        (``BOOKKEEPING``), the ones the manifest holds in fields of their own (dataset, objective) and the names
        left empty (no categorical part, no tied factor). What a family's export writes as the manifest's
        hyperparameters."""
        skip = self.BOOKKEEPING | {"objective"}
        return {
            f.name: value
            for f in fields(self)
            if f.name not in skip
            and isinstance(value := getattr(self, f.name), str | int | float | bool)
            and value != ""
        }


@dataclass
class ModelRunConfig(RunConfig):
    """A run that trains a model family and can export it (the VAE family, InfoGAN): named, in ``out_dir``."""

    name: str = "model"
    objective: str = ""  # the family's (training/families.py)
    dataset_params: dict[str, Any] = field(default_factory=dict)
    cache_on_device: bool = False  # hold the whole dataset on the device as uint8 (for GPUs)
    out_dir: str = "runs"
    export_dir: str = ""  # when set, `disentangle-train fit` exports the artifact there once training ends

    RESUMABLE: ClassVar[frozenset[str]] = RunConfig.RESUMABLE | {"cache_on_device", "out_dir", "export_dir"}
    BOOKKEEPING: ClassVar[frozenset[str]] = RESUMABLE - {"steps"} | {"dataset", "name", "dataset_params"}

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class Launch:
    """How a run was asked to start: fresh, resumed, or over an old run; the settings a resume may change
    (``overrides``); and the command line that started it, for the resume command printed when it stops."""

    resume: bool = False
    overwrite: bool = False
    overrides: tuple[str, ...] = ()
    command: tuple[str, ...] = ()

    @classmethod
    def of(cls, launch: Launch | bool) -> Launch:
        return launch if isinstance(launch, Launch) else cls(resume=launch)

    def resume_command(self) -> str:
        """The command that continues this run: the one that started it, with --resume instead of the flags that
        only make sense once (--overwrite; --override, whose settings the checkpoint now holds)."""
        kept: list[str] = []
        skipping = False
        for arg in self.command:
            if arg == "--override":
                skipping = True
                continue
            if skipping and not arg.startswith("--"):
                continue
            skipping = False
            if arg not in ("--resume", "--resume-if-present", "--overwrite"):
                kept.append(arg)
        return shlex.join([*kept, "--resume"])


class RunInterrupted(Exception):
    """A signal stopped the run after a checkpoint; the message says how to continue."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


@dataclass
class Progress:
    step: int = 0
    images_seen: int = 0
    wall_time_s: float = 0.0


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Distributed:
    """Join the process group when launched by torchrun (which sets RANK and WORLD_SIZE)."""
    if "RANK" not in os.environ:
        return Distributed()
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast pays only where the hardware has bf16 arithmetic; detect it rather than assume."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def make_optimizer(
    params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.Adam:
    """Fused Adam where the build has it (1.6x faster for the MLP on this CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas)


def changed_settings(saved: dict[str, Any], current: dict[str, Any], free: frozenset[str]) -> dict[str, tuple]:
    """Settings whose value differs between a checkpoint's config and this run's, except the ``free`` ones. A
    setting the checkpoint lacks (added since) does not count: the checkpoint's run had no such choice."""
    return {k: (saved.get(k), v) for k, v in current.items() if k not in free and k in saved and saved[k] != v}


class Run:
    """One training run's life around its steps (see the module docstring)."""

    def __init__(self, cfg: RunConfig, launch: Launch | bool = False, distributed: bool = True) -> None:
        self.cfg = cfg
        self.launch = Launch.of(launch)
        if self.launch.resume and self.launch.overwrite:
            raise ValueError("--resume continues the run and --overwrite deletes it: expected one of them, got both")
        self.ddp = setup_distributed(cfg.device) if distributed else Distributed()
        if not distributed and "RANK" in os.environ and os.environ.get("WORLD_SIZE", "1") != "1":
            raise ValueError(f"{type(cfg).__name__} trains in a single process; run it without torchrun")
        self.device = resolve_device(cfg.device, self.ddp.local_rank)
        self.bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_supported(self.device))
        self.hardware = {"device": str(self.device), "precision": "bf16" if self.bf16 else "fp32"}
        self.run_dir = cfg.run_dir
        self.checkpoint_path = self.run_dir / CHECKPOINT
        self.state: dict[str, Any] | None = None
        self.overridden: dict[str, tuple] = {}
        if self.launch.resume:
            self.state = self._read_checkpoint()
        self.progress = Progress(**self.state["progress"]) if self.state else Progress()
        self.stop_reason = ""  # "", "signal" or "time"
        self.checkpoint_due = False
        self._signal = 0
        self._sums: dict[str, torch.Tensor | float] = {}
        self._counts: dict[str, int] = {}
        self._log: Any = None
        self._bar: Any = None

    @property
    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def _read_checkpoint(self) -> dict[str, Any]:
        if not self.checkpoint_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {self.checkpoint_path}")
        state = load_checkpoint(self.checkpoint_path)
        current = asdict(self.cfg)
        unknown = sorted(set(self.launch.overrides) - set(current))
        if unknown:
            raise ValueError(f"--override: expected settings of this run, got {unknown}")
        changed = changed_settings(state["config"], current, self.cfg.RESUMABLE)
        refused = {k: v for k, v in changed.items() if k not in self.launch.overrides}
        if refused:
            listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in refused.items())
            raise ValueError(
                f"--resume: this command changes settings of the run in {self.run_dir} ({listed}); resume with the "
                f"run's settings, or name the ones to change: --override {' '.join(refused)}"
            )
        self.overridden = changed
        return state

    @contextmanager
    def started(self) -> Iterator[Self]:
        """Claim the run folder (refusing one that holds another run unless told), write config.json, open the
        log where the checkpoint left it and catch SIGTERM/SIGINT; on leaving, close it all. The loop's own
        checks (data, model) run before this, so a start that fails leaves the folder as it was."""
        if not self.launch.resume and holds_run(self.run_dir) and not self.launch.overwrite:
            raise ValueError(
                f"{self.run_dir} already holds a run; continue it with --resume, or start it again with "
                "--overwrite (which deletes it)"
            )
        if self.ddp.world_size > 1:
            dist.barrier()  # every rank has looked at the folder before rank 0 changes it
        if self.ddp.main:
            if self.launch.overwrite and self.run_dir.exists():
                shutil.rmtree(self.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomically(self.run_dir / CONFIG, json.dumps(asdict(self.cfg), indent=2))
            self._open_log()
        self._bar = tqdm(
            total=self.cfg.steps, initial=self.progress.step, disable=not self.ddp.main,
            desc=self.cfg.label, mininterval=1.0,
        )  # fmt: skip
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self._session_start = self._window_start = self._last_save = time.perf_counter()
        self._wall_before = self.progress.wall_time_s
        self._window_images = 0
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._bar.close()
            if self._log is not None:
                self._log.close()
        self._ended()

    def _open_log(self) -> None:
        """Keep the records up to the checkpoint's step (a run killed after a later log write logged steps that
        the resumed run takes again), then note any setting the resume changed."""
        path = self.run_dir / LOG
        if self.launch.resume:
            kept = [r for r in read_log(path) if r.get("step", 0) <= self.progress.step]
            write_text_atomically(path, "".join(json.dumps(r) + "\n" for r in kept))
        self._log = path.open("a")
        if self.overridden:
            changes = {k: {"from": old, "to": new} for k, (old, new) in self.overridden.items()}
            self._write({"step": self.progress.step, "event": "resume", "overrides": changes})

    def _write(self, record: dict[str, Any]) -> None:
        self._log.write(json.dumps(record) + "\n")
        self._log.flush()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._signal and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait for the step
        self._signal = signum
        if self.ddp.main:
            print(f"\n{signal.Signals(signum).name}: stopping after this step, with a checkpoint", file=sys.stderr)

    def steps(self) -> Iterator[int]:
        """The steps still to take, ending early once ``end_step`` found a signal or the time limit."""
        for step in range(self.progress.step, self.cfg.steps):
            yield step
            if self.stop_reason:
                return

    def _should_stop(self) -> str:
        elapsed = time.perf_counter() - self._session_start
        flags = [float(self._signal), float(self.cfg.time_limit_min > 0 and elapsed > 60 * self.cfg.time_limit_min)]
        if self.ddp.world_size > 1:  # every rank stops at the same step, or one would wait for the others forever
            agreed = torch.tensor(flags, device=self.device)
            dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
            flags = agreed.tolist()
        if flags[0]:
            self._signal = self._signal or int(flags[0])
            return "signal"
        return "time" if flags[1] else ""

    def end_step(self, images: int, terms: dict[str, torch.Tensor], **extra: float) -> None:
        """Count a finished step of ``images`` images (this rank's); log the window's mean ``terms`` (and
        ``extra``, e.g. the lr) at log steps and at the end; decide whether to stop and checkpoint."""
        for key, value in terms.items():
            self._sums[key] = self._sums.get(key, 0) + value
            self._counts[key] = self._counts.get(key, 0) + 1
        images *= self.ddp.world_size
        self._window_images += images
        done = self.progress.step + 1
        now = time.perf_counter()
        self.progress = Progress(
            done, self.progress.images_seen + images, self._wall_before + now - self._session_start
        )
        self.stop_reason = self._should_stop()
        last = done == self.cfg.steps or bool(self.stop_reason)
        if done % self.cfg.log_every == 0 or last:
            means = {k: float(v) / self._counts[k] for k, v in self._sums.items()}
            bad = {k: v for k, v in means.items() if not math.isfinite(v)}
            if bad:
                # Checked per log window, not per step: a per-step check would make a GPU wait every step.
                raise FloatingPointError(
                    f"{', '.join(bad)} not finite before step {done} ({bad}); lower lr or check the data"
                )
            rate = self._window_images / max(now - self._window_start, 1e-9)
            self._sums, self._counts, self._window_start, self._window_images = {}, {}, now, 0
            if self._log is not None:
                self._write({**asdict(self.progress), "images_per_s": round(rate, 1), **extra, **means})
            shown = {
                k: f"{v:.4g}" for k, v in means.items() if k not in ("capacity", "disc_capacity", "instance_noise")
            }
            self._bar.set_postfix(**shown, img_s=f"{rate:.0f}")
        self._bar.update(1)
        due = done % self.cfg.checkpoint_every == 0 or now - self._last_save > 60 * self.cfg.checkpoint_minutes
        self.checkpoint_due = self.ddp.main and (due or last)

    def save(self, state: dict[str, Any]) -> None:
        """Write the checkpoint: the loop's ``state`` (model, optimisers, ...) with the config, progress and RNG."""
        full = {
            **self.hardware, **state, "config": asdict(self.cfg), "progress": asdict(self.progress),
            "torch_rng": torch.get_rng_state(),
        }  # fmt: skip
        write_checkpoint(self.checkpoint_path, full)
        self._last_save = time.perf_counter()

    def restore_rng(self) -> None:
        """The checkpoint's torch RNG (single process: under DDP each rank seeds its own)."""
        if self.state is not None and self.ddp.world_size == 1:
            torch.set_rng_state(self.state["torch_rng"])

    def leave_together(self, model: nn.Module | None = None) -> None:
        """Under DDP: check the replicas agree, then leave the process group with every rank at once."""
        if self.ddp.world_size == 1:
            return
        if model is not None:
            check_ranks_agree(model)
        # Both ranks leave together: a rank that tore its gloo group down while the other still finished the
        # last collective aborted the other ("terminate called without an active exception") in 1 of 6 runs
        # on this 2-core machine under load; with the barrier, 0 of 30.
        dist.barrier()
        dist.destroy_process_group()

    def _ended(self) -> None:
        if not self.stop_reason:
            return
        how = self.launch.resume_command() if self.launch.command else "the same settings and --resume"
        where = f"step {self.progress.step:,} of {self.cfg.steps:,}, checkpoint in {self.run_dir}"
        if self.stop_reason == "time":
            if self.ddp.main:
                print(f"stopped at the time limit ({self.cfg.time_limit_min:g} min) at {where}; continue with:\n"
                      f"  {how}", file=sys.stderr, flush=True)  # fmt: skip
            return
        name = signal.Signals(self._signal).name
        raise RunInterrupted(self._signal, f"stopped by {name} at {where}; continue with:\n  {how}")


def check_ranks_agree(model: nn.Module) -> None:
    """DDP keeps replicas identical by construction; a divergence means a broken setup, so fail loudly."""
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"DDP replicas diverged: parameter checksums {[float(g) for g in gathered]}")
