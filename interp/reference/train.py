"""Training the reference model from its seed: ``interp reference train``.

The run is deterministic: the same seed, torch version and thread count give the same
weights bit for bit (the corpus is generated from the seed, the model is initialised
from it, and the CPU kernels run on a fixed number of threads).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch

from interp.config import check_positive
from interp.errors import ConfigError, TrainingDivergedError
from interp.io import atomic_write_text
from interp.results import Result

logger = logging.getLogger(__name__)


@dataclass
class ReferenceTrainConfig:
    """Settings of a reference-model training run."""

    out: str = "runs/reference"
    """Directory for model.safetensors, config.json, tokenizer.json and metrics.json."""
    seed: int = 0
    """Seed of the corpus sampler and of the initial weights."""
    steps: int = 1600
    """Optimizer steps."""
    batch_size: int = 64
    """Contexts per step."""
    ctx_len: int = 128
    """Tokens per context (BOS first)."""
    lr: float = 2e-3
    """Peak learning rate of AdamW (linear warm-up, cosine decay to a tenth of the peak)."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    threads: int = 2
    """CPU threads; fixed so that the run is reproducible bit for bit."""
    eval_every: int | None = None
    """Measure the task metrics every this many steps (None: only at the end)."""
    progress: bool = True
    """Show a progress bar with the loss (a notebook bar in Jupyter, text in a terminal)."""

    def __post_init__(self) -> None:
        check_positive(steps=self.steps, batch_size=self.batch_size, threads=self.threads)
        if self.ctx_len < 2 or self.ctx_len > 128:
            raise ConfigError(f"ctx-len must be in [2, 128] (the model's context), got {self.ctx_len}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")


@dataclass
class ReferenceTrainResult(Result):
    """What a training run produced."""

    stem: ClassVar[str] = "train_result"
    title: ClassVar[str] = "Reference-model training run"

    out: str
    steps: int
    final_loss: float
    seconds: float
    metrics: dict[str, float]
    passed: dict[str, bool]

    def summary(self) -> str:
        lines = [f"wrote {self.out} in {self.seconds:.0f} s (final loss {self.final_loss:.4f})"]
        lines += [f"  {name:28s} {self.metrics[name]:.4f}  {'ok' if ok else 'BELOW TARGET'}" for name, ok in self.passed.items()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        failed = [name for name, ok in self.passed.items() if not ok]
        lines = [f"below target: {', '.join(failed)}"] if failed else []
        head = (f"{self.out!r}: {self.steps} steps in {self.seconds:.0f} s, final loss {self.final_loss:.4f}, "
                f"{sum(self.passed.values())}/{len(self.passed)} task targets met")
        return plain_repr("ReferenceTrainResult", head, lines)

    def _repr_html_(self) -> str:
        from interp.reports import summary_html, table

        rows = [("out", self.out), ("steps", self.steps), ("seconds", round(self.seconds, 1)), ("final loss", self.final_loss),
                ("task targets met", f"{sum(self.passed.values())}/{len(self.passed)}")]
        metrics = table(["metric", "value", "met"], [[name, value, self.passed.get(name)] for name, value in self.metrics.items()])
        return summary_html("Reference-model training run", rows, table=metrics)


def _lr_at(step: int, cfg: ReferenceTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(cfg: ReferenceTrainConfig) -> ReferenceTrainResult:
    """Train the reference model from ``cfg.seed`` and write it to ``cfg.out``."""
    from tqdm.auto import tqdm

    from interp.packing import batched, pack
    from interp.reference import model as ref_model
    from interp.reference.corpus import token_ids
    from interp.reference.tasks import evaluate
    from interp.reference.tokenizer import build_tokenizer

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer()
    model = ref_model.build(ref_model.architecture(len(tokenizer)), tokenizer, seed=cfg.seed)
    model.train()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if param.ndim >= 2 and "embed" not in name else no_decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    batches = batched(pack(token_ids(tokenizer, seed=cfg.seed), cfg.ctx_len, tokenizer.bos_token_id), cfg.batch_size)
    start = time.perf_counter()
    loss_value = float("nan")
    bar = tqdm(range(cfg.steps), desc="reference", unit="step", disable=not cfg.progress)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg)
        tokens = next(batches)
        loss = model(tokens, return_type="loss")
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"reference training diverged at step {step} (loss {loss.item()}); lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = loss.item()
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            model.eval()
            logger.info("step %d loss %.4f\n%s", step + 1, loss_value, evaluate(model).table())
            model.train()
    seconds = time.perf_counter() - start
    model.eval()
    metrics = evaluate(model)
    out = ref_model.save(model, cfg.out)
    result = ReferenceTrainResult(
        out=str(out),
        steps=cfg.steps,
        final_loss=loss_value,
        seconds=seconds,
        metrics=metrics.metrics(),
        passed=metrics.passed(),
    )
    record = {"config": asdict(cfg), "result": asdict(result), "torch": torch.__version__}
    atomic_write_text(Path(cfg.out) / "train_log.json", json.dumps(record, indent=2) + "\n")
    logger.info("trained in %.0f s\n%s", seconds, metrics.table())
    return result
