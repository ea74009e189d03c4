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
from interp.errors import ConfigError, StoreError, TrainingDivergedError
from interp.io import OutputKind, atomic_write, atomic_write_text, claim_output
from interp.results import Result

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "train_log.json"
RUN_KIND = OutputKind(
    "reference-model", "a reference model",
    ("model.safetensors", "config.json", "tokenizer.json", LOG_FILE, CHECKPOINT_FILE),
    resume="`interp reference train --out {dir} --resume true` with the same settings",
)
"""The output kind of ``interp reference train`` (:func:`interp.io.claim_output`)."""
_SAME_ON_RESUME = ("seed", "steps", "batch_size", "ctx_len", "lr", "warmup_steps", "weight_decay", "threads")
"""The settings a resumed run must share with the original (the others do not change the weights)."""


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
    checkpoint_every: int | None = 200
    """Write OUT/checkpoint.pt every this many steps and at the end, for --resume (None: never)."""
    resume: bool = False
    """Continue the run in --out from its checkpoint; the weights equal an uninterrupted run's bit for bit."""
    overwrite: bool = False
    """Replace the model in --out (weights, config, tokenizer, log) and train again."""
    progress: bool = True
    """Show a progress bar with the loss (a notebook bar in Jupyter, text in a terminal)."""

    def __post_init__(self) -> None:
        check_positive(steps=self.steps, batch_size=self.batch_size, threads=self.threads, checkpoint_every=self.checkpoint_every)
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: resume continues the run in --out, overwrite replaces it")
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


def _save_checkpoint(path: Path, step: int, cfg: ReferenceTrainConfig, model, optimizer, record: dict) -> None:
    """The state after ``step`` steps: weights, AdamW moments, RNG, settings, loss and elapsed time."""
    from interp.rng import rng_state

    state = {"step": step, "config": asdict(cfg), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": rng_state(), "record": record}
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, cfg: ReferenceTrainConfig) -> dict:
    if not path.is_file():
        raise StoreError(f"--resume: no checkpoint at {path}; start the run without --resume")
    state = torch.load(path, map_location="cpu", weights_only=False)
    differ = [f"--{k.replace('_', '-')}: the run has {state['config'][k]!r}, this one {getattr(cfg, k)!r}"
              for k in _SAME_ON_RESUME if state["config"].get(k) != getattr(cfg, k)]
    if differ:
        raise StoreError(f"--resume: {path.parent} was trained with other settings ({'; '.join(differ)}); resume with the same ones")
    return state


def train(cfg: ReferenceTrainConfig) -> ReferenceTrainResult:
    """Train the reference model from ``cfg.seed`` and write it to ``cfg.out``, which is claimed
    for the run (:func:`interp.io.claim_output`); ``cfg.resume`` continues from its checkpoint."""
    with claim_output(cfg.out, RUN_KIND, overwrite=cfg.overwrite, resume=cfg.resume):
        return _train(cfg)


def _train(cfg: ReferenceTrainConfig) -> ReferenceTrainResult:
    from tqdm.auto import tqdm

    from interp.packing import batched, pack
    from interp.reference import model as ref_model
    from interp.reference.corpus import token_ids
    from interp.reference.tasks import evaluate
    from interp.reference.tokenizer import build_tokenizer
    from interp.rng import set_rng_state

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
    ckpt_path = Path(cfg.out) / CHECKPOINT_FILE
    first, record = 0, {"seconds": 0.0, "loss": float("nan")}
    if cfg.resume:
        state = _load_checkpoint(ckpt_path, cfg)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        first, record = state["step"], state["record"]
        for _ in range(first):  # the same batches as an uninterrupted run
            next(batches)
    start = time.perf_counter() - record["seconds"]
    loss_value = record["loss"]
    bar = tqdm(range(first, cfg.steps), desc="reference", unit="step", initial=first, total=cfg.steps, disable=not cfg.progress)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg)
        tokens = next(batches)
        loss = model(tokens, return_type="loss")
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"reference training diverged at step {step} (loss {loss.item()}); try a lower --lr or more --warmup-steps "
                f"(the last checkpoint, {ckpt_path}, is kept when --checkpoint-every wrote one)"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = loss.item()
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if cfg.checkpoint_every and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            _save_checkpoint(ckpt_path, step + 1, cfg, model, optimizer, {"seconds": time.perf_counter() - start, "loss": loss_value})
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
    atomic_write_text(Path(cfg.out) / LOG_FILE, json.dumps(record, indent=2) + "\n")
    logger.info("trained in %.0f s\n%s", seconds, metrics.table())
    return result
