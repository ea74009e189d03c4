"""Training codebook bottlenecks on the language-model loss.

Two modes, as in the paper: fine-tune the whole model with its bottlenecks inserted, or
keep the model frozen and train only the codebooks. The loss is the LM loss with the
bottlenecks in place plus ``codebook_loss_coef`` times the codebook (reconstruction) loss.
Codebooks may start from spherical k-means of the site's activations; codes unused for
``replace_dead_every`` steps are re-seeded from recent inputs.

:func:`train_codebooks` is the loop (an iterator of token batches in, a step counter
out); :func:`train` is what ``interp codebook train`` runs: it builds the model and data,
checkpoints atomically every ``checkpoint_every`` steps, resumes, and reports the
bottleneck's LM-loss and perplexity cost against the original model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from interp.codebooks.insert import Codebooks, codebook_site, inserted
from interp.config import check_positive, parse_count, parse_layers, parse_positive_count
from interp.errors import ConfigError, StoreError, TrainingDivergedError
from interp.io import OutputKind, claim_output
from interp.results import Result

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.safetensors"
RESULT_FILE = "train_result.json"
RUN_KIND = OutputKind(
    "codebook-run", "a codebook run",
    (CHECKPOINT_FILE, MODEL_FILE, RESULT_FILE, "train_result.html", "codebooks.safetensors", "codebooks.json"),
    resume="`interp codebook train --out {dir} --resume true` with the same settings",
)
"""The output kind of ``interp codebook train`` (:func:`interp.io.claim_output`)."""


@dataclass
class CodebookTrainConfig:
    """Train codebook bottlenecks inserted into a transformer-lens model."""

    out: str = "runs/codebooks"
    """Directory for checkpoints, the trained codebooks and the result JSON."""
    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2', 'EleutherAI/pythia-70m'), or a local checkpoint directory."""
    sites: list[str] = field(default_factory=lambda: ["mlp_out"])
    """Where to insert bottlenecks: mlp_out, attn_out, z (per head, before W_O; also attn_z), resid_post, or their TransformerLens hook names (hook_mlp_out, or blocks.2.hook_mlp_out for one layer)."""
    layers: str | None = None
    """Layers to insert them in, e.g. '3', '0,2' or '0-3' (default: all layers)."""
    n_codes: int = 96
    """Codes per codebook (per head at z)."""
    k: int = 1
    """Codes active per vector; the output is their mean."""
    data: str = "reference"
    """Token source: 'reference' (as plain text for other tokenizers), a .txt/.jsonl path, or a Hugging Face dataset name."""
    ctx_len: int | None = None
    """Context length (the model's n_ctx when unset)."""
    batch_size: int = 16
    """Contexts per step."""
    steps: int = 1000
    """Optimiser steps."""
    lr: float = 1e-3
    """Learning rate of the codebooks."""
    model_lr: float = 1e-4
    """Learning rate of the model's weights when fine-tuning."""
    freeze_model: bool = False
    """Train only the codebooks and keep the model's weights fixed."""
    codebook_loss_coef: float = 1.0
    """Weight of the codebook (reconstruction) loss added to the LM loss."""
    commitment: float = 0.0
    """Weight of the VQ-VAE commitment term (pulls activations toward their codes)."""
    kmeans_init: bool = True
    """Initialise each codebook with spherical k-means of the site's activations."""
    kmeans_tokens: str = "16384"
    """Activation vectors (tokens) used for the k-means initialisation, e.g. 16k."""
    replace_dead_every: int | None = 100
    """Re-seed codes unused for this many steps (never when unset)."""
    eval_batches: int = 8
    """Held-out batches for the LM-loss comparison."""
    checkpoint_every: int = 200
    """Steps between checkpoints."""
    resume: bool = False
    """Continue from OUT/checkpoint.pt if it exists."""
    overwrite: bool = False
    """Replace the run in --out (checkpoint, codebooks, weights, result) and start again."""
    seed: int = 0
    """Seed of initialisation and data order."""
    device: str | None = None
    """'cpu' or 'cuda' (CUDA when available if unset)."""
    progress: bool = True
    """Show a progress bar (a notebook bar in Jupyter, text in a terminal)."""

    def __post_init__(self) -> None:
        if not self.sites:
            raise ConfigError("--sites needs at least one site (mlp_out, attn_out, z, resid_post)")
        for entry in self.sites:
            try:
                codebook_site(entry)
            except ConfigError as err:
                raise ConfigError(f"--sites: {err}") from err
        check_positive(n_codes=self.n_codes, k=self.k, batch_size=self.batch_size, steps=self.steps,
                       eval_batches=self.eval_batches, checkpoint_every=self.checkpoint_every)
        parse_positive_count(self.kmeans_tokens, "--kmeans-tokens")
        if self.k > self.n_codes:
            raise ConfigError(f"--k ({self.k}) must not exceed --n-codes ({self.n_codes})")
        if self.replace_dead_every is not None and self.replace_dead_every < 1:
            raise ConfigError(
                f"--replace-dead-every must be at least 1, or unset to never replace codes; got {self.replace_dead_every}"
            )
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: resume continues the run in --out, overwrite replaces it")
        if self.lr <= 0 or self.model_lr <= 0:
            raise ConfigError(f"--lr and --model-lr must be positive, got {self.lr} and {self.model_lr}")

    @property
    def n_kmeans_tokens(self) -> int:
        """``kmeans_tokens`` as a number."""
        return parse_count(self.kmeans_tokens, "--kmeans-tokens")


@dataclass
class CodebookTrainResult(Result):
    """What a codebook training run produced and what the bottlenecks cost; ``OUT/train_result.json`` holds it."""

    stem: ClassVar[str] = "train_result"
    title: ClassVar[str] = "Codebook training run"

    out: str
    steps: int
    seconds: float
    loss_original: float
    """LM loss of the original model (no bottlenecks, original weights) on held-out batches."""
    loss_codebooks: float
    """LM loss with the bottlenecks inserted (and the fine-tuned weights, if fine-tuned)."""
    active_codes: dict[str, int]
    """hook -> codes used at least once on the held-out batches."""
    final_train_loss: float

    @property
    def relative_cost(self) -> float:
        """(loss_codebooks - loss_original) / loss_original."""
        return (self.loss_codebooks - self.loss_original) / self.loss_original

    @property
    def perplexity_original(self) -> float:
        return math.exp(self.loss_original)

    @property
    def perplexity_codebooks(self) -> float:
        return math.exp(self.loss_codebooks)

    def to_dict(self) -> dict:
        """The fields plus the derived cost and perplexities (ignored when read back)."""
        return {
            **super().to_dict(),
            "relative_cost": self.relative_cost,
            "perplexity_original": self.perplexity_original,
            "perplexity_codebooks": self.perplexity_codebooks,
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write ``train_result.json`` (into the run directory unless ``path`` is given)."""
        return super().save(path if path is not None else Path(self.out) / RESULT_FILE)

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head = f"{self.steps} steps, {self.seconds:.0f} s: LM loss {self.loss_original:.4f} -> {self.loss_codebooks:.4f} ({100 * self.relative_cost:+.1f}%)"
        return plain_repr("CodebookTrainResult", head, [f"{hook}: {n} codes active" for hook, n in self.active_codes.items()])

    def headline(self) -> list[tuple[str, object]]:
        return [("steps", self.steps), ("seconds", round(self.seconds, 1)),
                ("LM loss, original model", self.loss_original), ("LM loss, with codebooks", self.loss_codebooks),
                ("relative cost", f"{100 * self.relative_cost:+.2f}%"),
                ("perplexity", f"{self.perplexity_original:.3f} -> {self.perplexity_codebooks:.3f}"),
                ("final training loss", self.final_train_loss), ("run directory", self.out)]

    def _repr_html_(self) -> str:
        from interp.reports import bar_svg, summary_html

        chart = bar_svg(list(self.active_codes), list(self.active_codes.values()), title="active codes per bottleneck (held out)")
        return summary_html(self.title, self.headline(), chart)

    def summary(self) -> str:
        return (
            f"LM loss {self.loss_original:.4f} -> {self.loss_codebooks:.4f} with codebooks "
            f"({100 * self.relative_cost:+.1f}%), perplexity {self.perplexity_original:.2f} -> "
            f"{self.perplexity_codebooks:.2f}; active codes {self.active_codes}\n"
            f"{self.steps} steps in {self.seconds:.0f} s"
        )


TrainResult = CodebookTrainResult
"""Former name of :class:`CodebookTrainResult` (``interp.transcoders`` has its own ``TrainResult``)."""


@torch.no_grad()
def lm_loss(model, batches: Iterable[Tensor], codebooks: Codebooks | None = None) -> tuple[float, dict[str, int]]:
    """Mean next-token loss over ``batches`` (with the bottlenecks when given) and active codes."""
    total, n, used = 0.0, 0, {}
    ctx = inserted(model, codebooks) if codebooks is not None else contextlib.nullcontext()
    with ctx as run:
        for tokens in batches:
            tokens = tokens.to(model.cfg.device)
            total += model(tokens, return_type="loss").item() * tokens.numel()
            n += tokens.numel()
            for hook, codes in (run.codes.items() if run is not None else []):
                used.setdefault(hook, set()).update(codes.unique().tolist())
    if n == 0:
        raise ConfigError("no evaluation batches: the data source is empty or shorter than one batch")
    return total / n, {h: len(s) for h, s in used.items()}


@torch.no_grad()
def kmeans_init(model, codebooks: Codebooks, batches: Iterable[Tensor], n_vectors: int, seed: int = 0) -> None:
    """Initialise every codebook with spherical k-means of the original model's activations."""
    hooks = codebooks.hooks
    cached: dict[str, list[Tensor]] = {h: [] for h in hooks}
    have = 0
    for tokens in batches:
        _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=hooks)
        for hook in hooks:
            act = cache[hook]
            act = act if hook.endswith("attn.hook_z") else act.unsqueeze(-2)
            cached[hook].append(act.flatten(0, 1))
        have += tokens.numel()
        if have >= n_vectors:
            break
    for i, (hook, book) in enumerate(codebooks.items()):
        book.init_kmeans(torch.cat(cached[hook])[:n_vectors], seed=seed + i)


def train_codebooks(
    model,
    codebooks: Codebooks,
    batches: Iterator[Tensor],
    optimizer: torch.optim.Optimizer,
    steps: int,
    start_step: int = 0,
    codebook_loss_coef: float = 1.0,
    commitment: float = 0.0,
    replace_dead_every: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
    progress: bool = True,
) -> float:
    """Run optimiser steps ``start_step .. steps-1``; return the last step's total loss.

    ``on_step(step, loss)`` is called after each step (checkpoints, logging); ``progress``
    shows a progress bar with the LM and total loss.
    """
    from tqdm.auto import tqdm

    # clip the codes and the model separately: the codebook loss is summed over d_model and
    # its gradient would otherwise swamp the model's LM gradient in a joint clip
    groups = [[p for p in group["params"] if p.requires_grad] for group in optimizer.param_groups]
    codebooks.train()
    last = float("nan")
    bar = tqdm(range(start_step, steps), desc="codebook train", initial=start_step, total=steps, leave=False, disable=not progress)
    with inserted(model, codebooks, loss=True, commitment=commitment, keep_inputs=bool(replace_dead_every)) as run:
        for step in bar:
            tokens = next(batches).to(model.cfg.device)
            lm = model(tokens, return_type="loss")
            loss = lm + codebook_loss_coef * run.codebook_loss()
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"codebook training diverged at step {step} (loss {loss.item()}): NaN or inf in the model's "
                    "activations on this data, or too large a step (try a lower --lr or --model-lr); the last "
                    "checkpoint is kept"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for params in groups:
                torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            last = loss.item()
            if replace_dead_every and (step + 1) % replace_dead_every == 0:
                for hook, book in codebooks.items():
                    book.replace_dead(run.inputs[hook].flatten(0, -3))
            bar.set_postfix(lm=f"{lm.item():.3f}", total=f"{last:.3f}")
            if on_step is not None:
                on_step(step, last)
    codebooks.eval()
    return last


def _batches(cfg: CodebookTrainConfig, model, seed: int, n_batches: int | None = None) -> Iterator[Tensor]:
    """``cfg.data``'s token batches (exactly ``n_batches`` of them, or a DataError, when given)."""
    from interp.data import token_batches

    ctx = cfg.ctx_len or model.cfg.n_ctx
    return token_batches(cfg.data, model.tokenizer, ctx, cfg.batch_size, seed=seed, n_batches=n_batches)


def _optimizer(cfg: CodebookTrainConfig, model, codebooks: Codebooks) -> torch.optim.Optimizer:
    groups = [{"params": list(codebooks.parameters()), "lr": cfg.lr}]
    if not cfg.freeze_model:
        groups.append({"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.model_lr})
    return torch.optim.Adam(groups)


def _save_checkpoint(path: Path, step: int, cfg, model, codebooks, optimizer, record: dict) -> None:
    """Everything a resume needs to continue bit for bit (the global RNG too: dead codes are
    re-seeded at random), and ``record``: the elapsed seconds and last loss, for the result."""
    from interp.io import atomic_write
    from interp.rng import rng_state

    state = {
        "rng": rng_state(),
        "record": record,
        "step": step,
        "config": asdict(cfg),
        "codebooks": codebooks.state_dict(),
        "model": None if cfg.freeze_model else model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


_SHAPE_KEYS = ("model", "sites", "layers", "n_codes", "k", "freeze_model")


def _setup_mismatch(saved: dict, cfg: CodebookTrainConfig, n_layers: int) -> dict:
    """The settings that shape the codebooks and differ between a checkpoint's config and ``cfg``
    (layers compared as the layers they name: ``[3]`` and ``'3'`` agree)."""
    differ = {}
    for key in _SHAPE_KEYS:
        old, new = saved.get(key), getattr(cfg, key)
        same = parse_layers(old, n_layers) == parse_layers(new, n_layers) if key == "layers" else old == new
        if not same:
            differ[key] = (old, new)
    return differ


def train(cfg: CodebookTrainConfig) -> CodebookTrainResult:
    """Train codebooks as ``cfg`` says; write them (and fine-tuned weights) to ``cfg.out``,
    which is claimed for the run (:func:`interp.io.claim_output`: locked, refused when it holds
    something else, marked complete last)."""
    with claim_output(cfg.out, RUN_KIND, overwrite=cfg.overwrite, resume=cfg.resume):
        return _train(cfg)


def _train(cfg: CodebookTrainConfig) -> CodebookTrainResult:
    from interp.models import check_context, fingerprint, load_model
    from interp.rng import set_rng_state

    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    model = load_model(cfg.model, device=cfg.device)
    trained_on = fingerprint(model)  # the model as loaded, before any fine-tuning
    check_context(model, cfg.ctx_len or model.cfg.n_ctx)
    for p in model.parameters():
        p.requires_grad_(not cfg.freeze_model)
    eval_set = list(_batches(cfg, model, seed=cfg.seed + 10_000, n_batches=cfg.eval_batches))
    loss_original, _ = lm_loss(model, eval_set)
    codebooks = Codebooks.create(model, cfg.sites, parse_layers(cfg.layers, model.cfg.n_layers), cfg.n_codes, cfg.k)
    optimizer = _optimizer(cfg, model, codebooks)
    start = 0
    record = {"seconds": 0.0, "last": float("nan")}
    ckpt_path = out / CHECKPOINT_FILE
    if cfg.resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=model.cfg.device, weights_only=False)
        saved = state["config"]
        mismatch = _setup_mismatch(saved, cfg, model.cfg.n_layers)
        if mismatch:
            differ = "; ".join(f"--{k.replace('_', '-')}: the checkpoint has {old!r}, this run {new!r}" for k, (old, new) in mismatch.items())
            raise StoreError(
                f"{ckpt_path} was written with a different setup ({differ}); "
                "resume with the same settings, or use a new --out"
            )
        codebooks.load_state_dict(state["codebooks"])
        if state["model"] is not None:
            model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"] + 1
        if "rng" in state:  # checkpoints before the RNG was kept resume, just not bit for bit
            set_rng_state(state["rng"])
        record = state.get("record") or record
        logger.info("resuming from step %d", start)
    elif cfg.kmeans_init:
        kmeans_init(model, codebooks, _batches(cfg, model, seed=cfg.seed + 20_000), cfg.n_kmeans_tokens, cfg.seed)
    batches = _batches(cfg, model, seed=cfg.seed, n_batches=cfg.steps)
    for _ in range(start):  # the same stream as an uninterrupted run
        next(batches)
    t0 = time.monotonic() - record["seconds"]

    def on_step(step: int, loss: float) -> None:
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            done = {"seconds": time.monotonic() - t0, "last": loss}
            _save_checkpoint(ckpt_path, step, cfg, model, codebooks, optimizer, done)

    last = record["last"]
    if start < cfg.steps:
        last = train_codebooks(
            model, codebooks, batches, optimizer, cfg.steps, start,
            cfg.codebook_loss_coef, cfg.commitment, cfg.replace_dead_every, on_step, cfg.progress,
        )
    model.eval()
    loss_cb, active = lm_loss(model, eval_set, codebooks)
    result = CodebookTrainResult(
        out=str(out), steps=cfg.steps, seconds=time.monotonic() - t0, loss_original=loss_original,
        loss_codebooks=loss_cb, active_codes=active, final_train_loss=last,
    )
    _write_outputs(out, cfg, model, codebooks, result, trained_on)
    return result


def _write_outputs(out: Path, cfg: CodebookTrainConfig, model, codebooks: Codebooks, result: CodebookTrainResult,
                   trained_on: dict | None = None) -> None:
    from safetensors.torch import save_file

    from interp.io import atomic_write

    codebooks.save(out, extra={"model": cfg.model, "model_fingerprint": trained_on, "fine_tuned": not cfg.freeze_model,
                               "config": asdict(cfg)})
    if not cfg.freeze_model:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        with atomic_write(out / MODEL_FILE) as tmp:
            save_file(state, str(tmp))
    result.save(out / RESULT_FILE)


def load_trained(directory: str | Path, device: str | None = None, *, force: bool = False):
    """The model (fine-tuned weights if the run fine-tuned) and codebooks written by :func:`train`.

    The model is loaded by the name the run records; when what loads under that name is not the
    model the codebooks were trained on (its fingerprint differs, e.g. a checkpoint directory
    written again), that is a :class:`StoreError` unless ``force``; then ``codebooks.forced`` is
    ``{"forced": True, "trained_on": ..., "used_on": ...}`` (None otherwise)."""
    from safetensors.torch import load_file

    from interp.codebooks.insert import CODEBOOKS_CONFIG
    from interp.io import require_complete
    from interp.models import check_fingerprint, load_model

    directory = Path(directory)
    require_complete(directory)
    meta_path = directory / CODEBOOKS_CONFIG
    if not meta_path.is_file():
        raise StoreError(f"{directory} holds no trained codebooks; run `interp codebook train --out {directory}`")
    meta = json.loads(meta_path.read_text())
    model = load_model(meta.get("model", "reference"), device=device)
    forced = check_fingerprint(meta.get("model_fingerprint"), model, what=f"the codebooks in {directory}", force=force, error=StoreError,
                      fix="load them with that model, or pass --force true (force=True) to use them anyway")
    if meta.get("fine_tuned"):
        weights = directory / MODEL_FILE
        if not weights.is_file():
            raise StoreError(f"{directory} says the model was fine-tuned but {MODEL_FILE} is missing; retrain")
        model.load_state_dict(load_file(str(weights)))
    codebooks = Codebooks.load(directory, device=model.cfg.device)
    codebooks.forced = forced  # what report and search record when force let another model through
    codebooks.trained_ctx_len = meta.get("config", {}).get("ctx_len") or model.cfg.n_ctx  # what report/search read by default
    return model, codebooks
