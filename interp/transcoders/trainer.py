"""One optimiser over several transcoders: the training step, schedules, dead latents, checkpoints.

:class:`Trainer` owns the modules of one run (a transcoder per layer, or one cross-layer
transcoder over all the layers; all fed from the same forward pass), an Adam optimiser, the learning-rate schedule (linear warm-up, constant,
linear decay to zero over the last ``decay`` fraction), and each latent's count of tokens
since it last fired. :meth:`Trainer.step` is one update; :meth:`Trainer.state_dict`
holds everything a bit-for-bit resume needs (weights and normalisation, Adam moments,
step, dead-latent counters, RNG states); the data position is saved beside it by the
caller. The losses of different transcoders are summed, so with Adam (a per-parameter
update) each transcoder trains exactly as it would alone.

Data parallelism: with ``world`` > 1 every process holds identical transcoders, computes
gradients on its share of the batch, and the gradients are averaged with
``all_reduce`` before the update (what DDP does), so every process stays identical; buffers
a module updates while training (the running threshold of a cross-layer TopK over all layers)
are averaged over the processes after each step for the same reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

from interp.errors import ConfigError, DataError, KernelInputError, TrainingDivergedError
from interp.kernels.encoder import PreActBuffer
from interp.rng import rng_state, set_rng_state  # noqa: F401 - also imported from here
from interp.transcoders.base import TranscoderModule
from interp.transcoders.data import PairBatch


@dataclass
class OptimConfig:
    """Optimiser and schedule of a transcoder training run."""

    lr: float = 1e-3
    """Peak Adam learning rate."""
    warmup_steps: int | None = None
    """Linear warm-up steps; None = 5 percent of training, at most 1000."""
    decay: float = 0.2
    """Fraction of training at the end over which the learning rate decays linearly to zero."""
    adam_beta1: float = 0.9
    """Adam's first-moment decay."""
    adam_beta2: float = 0.999
    """Adam's second-moment decay."""
    dead_after_tokens: int = 1_000_000
    """A latent that has not fired for this many training tokens counts as dead (Gao et al.
    use 10M on GPT-2; it is capped at half the run's tokens)."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if not 0 <= self.decay <= 1:
            raise ConfigError(f"--decay is a fraction of training in [0, 1], got {self.decay}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"--warmup-steps must be at least 0, got {self.warmup_steps}")
        if self.dead_after_tokens < 1:
            raise ConfigError(f"--dead-after-tokens must be at least 1, got {self.dead_after_tokens}")


@dataclass
class StepMetrics:
    """What one step measured, per transcoder (already averaged over processes)."""

    step: int
    lr: float
    loss: dict[str, float]
    l0: dict[str, float]
    fvu: dict[str, float]
    dead_fraction: dict[str, float]
    parts: dict[str, dict[str, float]]

    def __repr__(self) -> str:
        means = ", ".join(f"{k} {v:.4g}" for k, v in self.summary().items())
        return f"StepMetrics(step {self.step}, lr {self.lr:.3g}, {len(self.loss)} transcoders; mean {means})"

    def summary(self) -> dict[str, float]:
        """Means over transcoders, for progress bars and loggers."""
        mean = lambda d: sum(d.values()) / len(d)  # noqa: E731
        return {"loss": mean(self.loss), "L0": mean(self.l0), "FVU": mean(self.fvu), "dead": mean(self.dead_fraction)}


def lr_at(step: int, total: int, cfg: OptimConfig) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: warm-up, constant, linear decay."""
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(1000, math.ceil(0.05 * total))
    if warmup and step < warmup:
        return cfg.lr * (step + 1) / warmup
    decay_steps = int(cfg.decay * total)
    decay_start = total - decay_steps
    if decay_steps and step >= decay_start:
        return cfg.lr * max(0.0, (total - step) / decay_steps)
    return cfg.lr


class Trainer:
    """Trains several transcoders together; see the module docstring."""

    def __init__(
        self,
        transcoders: dict[str, TranscoderModule],
        cfg: OptimConfig,
        total_steps: int,
        tokens_per_step: int,
        world: int = 1,
    ) -> None:
        if total_steps < 1:
            raise ConfigError(f"total_steps must be positive, got {total_steps}")
        self.transcoders = transcoders
        self.cfg = cfg
        self.total_steps = total_steps
        self.tokens_per_step = tokens_per_step
        self.world = world
        self.dead_after = min(cfg.dead_after_tokens, max(tokens_per_step, total_steps * tokens_per_step // 2))
        # One Adam parameter group per learning-rate scale an architecture asks for
        # (Transcoder.lr_scales; e.g. JumpReLU thresholds), all following one schedule.
        groups: dict[float, list] = {}
        for tc in transcoders.values():
            scales = tc.lr_scales()
            for name, p in tc.named_parameters():
                groups.setdefault(float(scales.get(name, 1.0)), []).append(p)
        # torch's fused Adam (one pass over each parameter, no temporaries) where it runs:
        # at GPT-2 small's shape (37.7M parameters a layer) it updates in 115 ms where the
        # default per-tensor loop takes 555 ms on 2 CPU cores (docs/benchmarks.md).
        params = [p for ps in groups.values() for p in ps]
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params) or None
        self.optimizer = torch.optim.Adam(
            [{"params": ps, "lr_scale": scale} for scale, ps in sorted(groups.items())],
            lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), fused=fused,
        )
        self.since_fired = {
            key: torch.zeros(tc.n_latents, dtype=torch.long, device=tc.W_enc.device) for key, tc in transcoders.items()
        }
        self.step_count = 0
        self.initialised = False
        # one pre-activation tensor for every TopK encoder of every step (interp.kernels.encoder):
        # a fresh 400 MB tensor a step at GPT-2 small's shape costs ~80 ms of page faults on a CPU
        self.preact_buffer = PreActBuffer()

    @torch.no_grad()
    def initialise(self, batch: PairBatch) -> None:
        """Record input/output normalisation and the decoder-bias init from a first batch.

        With several processes each holds only its share of the rows, so the shares are
        gathered first: every process starts from the same transcoders as one process would.
        """
        for key, tc in self.transcoders.items():
            x, y = batch[key]
            if self.world > 1:
                x, y = _gather_rows(x, self.world), _gather_rows(y, self.world)
            tc.set_normalisation(x, y)
        self.initialised = True

    def dead_mask(self, key: str) -> torch.Tensor:
        return self.since_fired[key] >= self.dead_after

    def step(self, batch: PairBatch) -> StepMetrics:
        """One optimiser update on ``batch``. Raises DataError when the batch's activations hold
        NaN or inf (bad data or a broken model, before any update), TrainingDivergedError when
        the loss or a gradient becomes NaN/inf from finite activations."""
        for key, pair in batch.items():
            for what, tensor in zip(("inputs", "targets"), pair):
                # a sum is finite when every entry is (one pass); the exact test only when it is not
                if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
                    bad = int((~torch.isfinite(tensor)).sum())
                    raise DataError(
                        f"{key}: the activations ({what}) of the batch at step {self.step_count} hold {bad} NaN or inf "
                        f"values of {tensor.numel()}: the model or the data (--data / --cache) produce non-finite "
                        "activations, which no learning rate fixes"
                    )
        if not self.initialised:
            self.initialise(batch)
        progress = self.step_count / self.total_steps
        lr = lr_at(self.step_count, self.total_steps, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        try:
            with self.preact_buffer:
                outputs = {key: tc.loss(*batch[key], progress=progress, dead=self.dead_mask(key)) for key, tc in self.transcoders.items()}
        except KernelInputError:  # the top-k kernel refuses NaN/inf pre-activations: from the weights, the inputs being finite
            self._blame_weights()
            raise
        total = sum(out.loss for out in outputs.values())
        for key, out in outputs.items():
            if not torch.isfinite(out.loss):
                self._blame_weights()
                raise TrainingDivergedError(f"{key}: loss is {out.loss.item()} at step {self.step_count}")
        total.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        if self.world > 1:
            _average_gradients(params, self.world)
        if not torch.isfinite(torch.stack([p.grad.sum() for p in params]).sum()):  # NaN/inf survive the sum
            raise TrainingDivergedError(f"a gradient is NaN or inf at step {self.step_count}")
        self.optimizer.step()
        for tc in self.transcoders.values():
            tc.after_step()
        if self.world > 1:
            _average_buffers([b for tc in self.transcoders.values() for b in tc.trained_buffers()], self.world)
        return self._record(outputs, lr)

    def _blame_weights(self) -> None:
        """Raise TrainingDivergedError naming the first transcoder with a NaN or inf weight, if any
        (the inputs were checked finite before the step, so non-finite results come from there)."""
        broken = [key for key, tc in self.transcoders.items() if not all(bool(torch.isfinite(p).all()) for p in tc.parameters())]
        if broken:
            raise TrainingDivergedError(f"{broken[0]}: a weight is NaN or inf at step {self.step_count}") from None

    @torch.no_grad()
    def _record(self, outputs, lr: float) -> StepMetrics:
        fired = {key: out.fired for key, out in outputs.items()}
        stats = torch.stack([torch.stack([out.loss.detach(), out.l0, out.fvu]) for out in outputs.values()])
        if self.world > 1:
            for key in fired:
                as_int = fired[key].to(torch.int32)
                dist.all_reduce(as_int, op=dist.ReduceOp.MAX)
                fired[key] = as_int.bool()
            dist.all_reduce(stats)
            stats /= self.world
        metrics = StepMetrics(self.step_count, lr, {}, {}, {}, {}, {})
        for row, (key, out) in zip(stats.tolist(), outputs.items()):
            counter = self.since_fired[key]
            counter += self.tokens_per_step
            counter[fired[key]] = 0
            metrics.loss[key], metrics.l0[key], metrics.fvu[key] = row
            metrics.dead_fraction[key] = self.dead_mask(key).float().mean().item()
            metrics.parts[key] = {name: value.item() for name, value in out.parts.items()}
        self.step_count += 1
        return metrics

    def state_dict(self) -> dict:
        """Everything needed to continue bit-for-bit (the caller adds the data position)."""
        return {
            "step": self.step_count,
            "initialised": self.initialised,
            "transcoders": {key: tc.state_dict() for key, tc in self.transcoders.items()},
            "optimizer": self.optimizer.state_dict(),
            "since_fired": {key: v.clone() for key, v in self.since_fired.items()},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for key, tc in self.transcoders.items():
            tc.load_state_dict(state["transcoders"][key])
        self.optimizer.load_state_dict(state["optimizer"])
        for key, value in state["since_fired"].items():
            self.since_fired[key].copy_(value)
        self.step_count = state["step"]
        self.initialised = state["initialised"]
        set_rng_state(state["rng"])


def _average_gradients(params: list[torch.Tensor], world: int) -> None:
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def _average_buffers(buffers: list[torch.Tensor], world: int) -> None:
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1).float() for b in buffers])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for b in buffers:
        b.copy_(flat[offset : offset + b.numel()].view_as(b))
        offset += b.numel()


def _gather_rows(t: torch.Tensor, world: int) -> torch.Tensor:
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)
