"""``interp.transcoders.train(cfg)``: train one transcoder per MLP layer, or one cross-layer
transcoder over all of them, end to end.

Reads activations from a cache directory (``interp.cache.ActivationStore``) or straight
from the model (``interp.cache.StreamingActivations`` over a token stream), trains every
module the architecture wires into the requested layers (:meth:`TranscoderModule.wirings`:
one per layer, or one ``clt`` over them all) off the same forward pass with
:class:`~interp.transcoders.trainer.Trainer`, checkpoints atomically every
``checkpoint_every`` steps, and saves each per-layer transcoder in SAELens' layout under
``OUT/layer_L/`` (a cross-layer transcoder in circuit-tracer's layout under ``OUT/clt/``)
plus ``OUT/run.json``. ``resume=True`` continues from
``OUT/checkpoint/`` bit-for-bit (weights, Adam moments, schedule step, dead-latent
counters, RNG states and the data position are all restored).

Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains data-parallel (``parallel="data"``: each
process takes an equal share of every batch's rows and gradients are averaged) or gives
each process whole modules (``parallel="layers"``: whole layers of per-layer transcoders; a
cross-layer transcoder is one module), on gloo for CPU and NCCL for CUDA.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import torch
from simple_parsing import field as sp_field

from interp.config import check_positive, parse_count, parse_layers, parse_positive_count
from interp.errors import ConfigError, DataError, InterpError, StoreError, TrainingDivergedError
from interp.hooks import MlpInputSite, mlp_input_site
from interp.io import OutputKind, atomic_write, claim_output
from interp.results import Result
from interp.transcoders import formats, registry
from interp.transcoders.data import PairedBatches, Wiring, required_hooks
from interp.transcoders.trainer import OptimConfig, Trainer

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
RUN_FILE = "run.json"
RUN_KIND = OutputKind(
    "transcoder-run", "a transcoder run", (RUN_FILE, "run.html", CHECKPOINT_DIR, "layer_*", "clt"),
    resume="`interp transcoder train --out {dir} --resume true` with the same settings",
)
"""The output kind of ``interp transcoder train`` (:func:`interp.io.claim_output`)."""


@dataclass
class _TrainConfigBase:
    """Train transcoders that imitate a model's MLP layers.

    The settings of the chosen architecture (``k`` for TopK, ``l1_coefficient`` for ReLU,
    ...) are fields too: :class:`TrainConfig` has one per setting any registered
    architecture takes, read from the registry, unset (None) meaning the architecture's default.
    """

    model: str = "reference"
    """'reference', a TransformerLens model name, or a local checkpoint directory (the model whose MLPs are imitated)."""
    layers: str | None = None
    """Layers to train, e.g. '0,1,2,3', '0-3' or 'all' (default: all); all train together off one forward pass."""
    arch: str = sp_field(default="topk", choices=registry.names())
    """Architecture, from interp.transcoders.registry; its own settings (e.g. --k for topk) are listed below."""
    expansion: int = 16
    """Latents per input dimension: d_sae = expansion * d_model."""
    tokens: str = "5M"
    """Training tokens, e.g. 5M, 500k."""
    batch_size: int = 4096
    """Tokens per optimiser step (split across processes under torchrun)."""
    ctx_len: int = 128
    """Context length of the token stream (when streaming from the model)."""
    data: str = "reference"
    """Token source when streaming: 'reference' (the reference corpus; as plain text for other tokenizers), a local .txt/.jsonl path, or a Hugging Face dataset name."""
    dataset: str | None = None
    """Deprecated: the old name of --data."""
    cache: str | None = None
    """Read activations from this cache directory (written by `interp cache`) instead of running the model."""
    fused_forward: bool = True
    """When streaming from the model, run interp's fused forward (interp.cache.fused: on a CPU 1.7-2.1x faster on the reference model, 1.2x at GPT-2 small's shape; equal to transformer-lens' to float rounding); false runs transformer-lens' forward."""
    out: str = "runs/tc"
    """Run directory: checkpoints, the trained transcoders (SAELens layout) and run.json."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint, bit-for-bit."""
    overwrite: bool = False
    """Replace the run in --out (its checkpoint, transcoders and run.json) and start again."""
    checkpoint_every: int | None = 500
    """Checkpoint every this many steps (None: only at the end)."""
    seed: int = 0
    """Seeds initialisation, data order and token sampling."""
    device: str | None = None
    """'cpu' or 'cuda' (default: CUDA when available)."""
    parallel: Literal["data", "layers"] = "data"
    """Under torchrun: 'data' splits each batch's rows over processes, 'layers' gives each process whole layers (per-layer transcoders only)."""
    wandb_project: str | None = None
    """Log to this Weights & Biases project (needs `pip install wandb`)."""
    progress: bool = True
    """Show a progress bar with live loss, L0, FVU and dead fraction."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser and schedule."""

    def __post_init__(self) -> None:
        from interp.data import data_option

        self.data, self.dataset = data_option(self.data, self.dataset), None
        if isinstance(self.optim, dict):
            self.optim = OptimConfig(**self.optim)
        arch = registry.get(self.arch)  # an unknown name raises here, listing the known ones
        takes = {f.name for f in arch.settings()}
        for name, (_, _, users) in registry.settings().items():
            if getattr(self, name, None) is not None and name not in takes:
                raise ConfigError(f"--{name.replace('_', '-')} applies to {', '.join(users)}, not {self.arch!r}")
        check_positive(expansion=self.expansion, batch_size=self.batch_size, ctx_len=self.ctx_len,
                       checkpoint_every=self.checkpoint_every)
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: resume continues the run in --out, overwrite replaces it")
        parse_positive_count(self.tokens, "--tokens")
        arch.config(d_in=1, d_out=1, d_sae=2**31 - 1, **self.arch_settings())  # the architecture checks its settings

    @property
    def n_tokens(self) -> int:
        return parse_count(self.tokens, "tokens")

    @property
    def steps(self) -> int:
        return max(1, self.n_tokens // self.batch_size)

    def arch_settings(self) -> dict[str, Any]:
        """The architecture's settings given in this config (the unset ones keep their defaults)."""
        return {f.name: getattr(self, f.name) for f in registry.get(self.arch).settings() if getattr(self, f.name, None) is not None}

    def arch_config(self, d_in: int, d_out: int, n_layers: int = 1):
        """The architecture's config for a module from ``d_in`` to ``d_out`` dimensions (over
        ``n_layers`` layers for a cross-layer transcoder; ``expansion * d_in`` latents per layer)."""
        arch = registry.get(self.arch)
        shape = {"n_layers": n_layers} if arch.cross_layer else {}
        return arch.config(d_in=d_in, d_out=d_out, d_sae=self.expansion * d_in, **shape, **self.arch_settings())

    def wirings(self, layers: list[int], mlp_input: MlpInputSite = "ln2_normalized") -> list[Wiring]:
        """The modules this run trains over ``layers`` and where each sits in a model whose MLPs
        read ``mlp_input`` (:func:`interp.hooks.mlp_input_site`)."""
        return registry.get(self.arch).transcoder.wirings(layers, self.arch_settings(), mlp_input)

    def identity(self) -> dict:
        """The settings a resumed run must share with the original."""
        keep = asdict(self)
        for name in ("resume", "overwrite", "checkpoint_every", "progress", "wandb_project", "device", "dataset"):
            keep.pop(name)
        return keep


def _arch_setting_fields() -> list[tuple[str, Any, Any]]:
    """One optional field per setting of any registered architecture, its help from the architecture's docstring."""
    import typing

    out = []
    for name, (_, text, users) in registry.settings().items():
        kind = typing.get_type_hints(registry.get(users[0]).config)[name]
        note = f"For {', '.join(users)} only (unset: the architecture's default)."
        choices = {"choices": typing.get_args(kind)} if typing.get_origin(kind) is typing.Literal else {}
        out.append((name, Optional[kind], sp_field(default=None, help=f"{text} {note}".strip(), **choices)))  # noqa: UP045
    return out


TrainConfig = make_dataclass(
    "TrainConfig",
    _arch_setting_fields(),
    bases=(_TrainConfigBase,),
    namespace={"__doc__": _TrainConfigBase.__doc__, "__module__": __name__},
)
"""The config of :func:`train`: the fields of ``_TrainConfigBase`` plus one per architecture setting."""


@dataclass
class TrainResult(Result):
    """What a transcoder training run produced; ``OUT/run.json`` holds it."""

    stem: ClassVar[str] = "run"
    title: ClassVar[str] = "Transcoder training run"

    out: str
    layers: list[int]
    arch: str
    steps: int
    tokens: int
    seconds: float
    final: dict[str, dict[str, float]]
    """Per module key (``layer_L``, ``clt``): loss, L0, FVU and dead fraction over the last steps;
    a cross-layer transcoder also has ``l0_L`` (its layer-L latents) and ``fvu_L`` (output layer L)."""
    config: dict
    history: list[dict]
    """Every ``log_every``-th step: step, lr, and the means over layers of loss, L0, FVU, dead."""
    model_fingerprint: dict | None = None
    """:func:`interp.models.fingerprint` of the model whose activations trained the run (also in
    each module's ``cfg.json``); None when unknown (activations passed in without a model)."""

    def save(self, path: str | Path | None = None) -> Path:
        """Write ``run.json`` (into the run directory unless ``path`` is given)."""
        return super().save(path if path is not None else Path(self.out) / RUN_FILE)

    @classmethod
    def load(cls, path: str | Path) -> TrainResult:
        path = Path(path)
        if path.is_dir() and not (path / RUN_FILE).is_file():
            raise StoreError(f"{path / RUN_FILE} not found: not a finished `interp transcoder train` run directory")
        return super().load(path)

    def summary(self) -> str:
        head = f"trained {self.arch} transcoders for layers {self.layers} on {self.tokens:,} tokens in {self.seconds:.0f} s"
        layout = "circuit-tracer's CLT layout in clt/" if registry.get(self.arch).cross_layer else "SAELens layout per layer"
        return head + "\n" + self.table() + f"\nwrote {self.out} ({layout}; run.json)"

    def __repr__(self) -> str:
        from interp.reports import brief, plain_repr

        head = f"{self.arch} on layers [{brief(self.layers, 6)}]: {self.steps} steps, {self.tokens:,} tokens, {self.seconds:.0f} s"
        lines = [f"{key}: L0 {m['L0']:.2f}  FVU {m['FVU']:.4f}  dead {m['dead']:.3f}" for key, m in self.final.items()]
        return plain_repr("TrainResult", head, lines)

    def _repr_html_(self) -> str:
        from interp.reports import line_svg, summary_html, table

        rows = [("architecture", self.arch), ("layers", ", ".join(map(str, self.layers))), ("steps", self.steps),
                ("tokens", self.tokens), ("seconds", round(self.seconds, 1)), ("run directory", self.out)]
        final = table(["layer", "loss", "L0", "FVU", "dead"],
                      [[key, m["loss"], m["L0"], m["FVU"], m["dead"]] for key, m in self.final.items()],
                      ["", ".4g", ".2f", ".4f", ".3f"], max_rows=16)
        steps = [h["step"] for h in self.history]
        chart = line_svg({"FVU": [h["FVU"] for h in self.history], "dead": [h["dead"] for h in self.history]}, steps,
                         title="mean over layers during training", x_label="step")
        return summary_html("Transcoder training run", rows, chart or None, table=final)

    def table(self) -> str:
        lines = [f"{'layer':10s} {'L0':>7s} {'FVU':>7s} {'dead':>6s}"]
        for key, m in self.final.items():
            lines.append(f"{key:10s} {m['L0']:7.2f} {m['FVU']:7.4f} {m['dead']:6.3f}")
            for layer in (name[3:] for name in m if name.startswith("l0_")):
                lines.append(f"{'  layer ' + layer:10s} {m['l0_' + layer]:7.2f} {m['fvu_' + layer]:7.4f}")
        return "\n".join(lines)


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return _Dist(dist.get_rank(), dist.get_world_size())


def open_source(cfg: TrainConfig, model, wirings: list[Wiring], device: str):
    """The activation source: the cache directory, or the model run over the token stream."""
    from interp import cache

    if cfg.cache is not None:
        store = cache.ActivationStore.open(cfg.cache)
        missing = [h for h in required_hooks(wirings) if h not in store.hook_names]
        if missing:
            raise StoreError(f"cache {cfg.cache} lacks {missing}; cache the hooks the modules read and mlp_out of every layer you train")
        return store
    from interp.data import load_contexts

    n_contexts = -(-cfg.n_tokens // cfg.ctx_len)
    tokens = load_contexts(cfg.data, model.tokenizer, n_contexts, cfg.ctx_len, seed=cfg.seed)
    return cache.StreamingActivations(model, required_hooks(wirings), tokens, fused=cfg.fused_forward)


def _checkpoint_path(out: Path, dist_info: _Dist, parallel: str) -> Path:
    name = f"state-rank{dist_info.rank}.pt" if parallel == "layers" and dist_info.world > 1 else "state.pt"
    return out / CHECKPOINT_DIR / name


class _Sink:
    """The file ``torch.save`` writes through, keeping the OSError of a failed write (torch
    reports a full disk as ``RuntimeError: ... unexpected pos``, losing the cause)."""

    def __init__(self, handle) -> None:
        self.handle, self.error = handle, None

    def write(self, data) -> int:
        try:
            return self._write(self.handle, data)
        except OSError as err:
            self.error = err
            raise

    @staticmethod
    def _write(handle, data) -> int:
        return handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def save_checkpoint(path: Path, trainer: Trainer, position: tuple[int, int], identity: dict, record: dict | None = None) -> None:
    """Write the trainer's state, data position, config identity and the run's record so far
    (history, recent metrics, elapsed seconds: what run.json needs after a resume) atomically (a
    failed write, e.g. a full disk, raises its OSError and leaves the previous checkpoint in place)."""
    state = {"trainer": trainer.state_dict(), "position": position, "identity": identity, "record": record}
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        sink = _Sink(handle)
        try:
            torch.save(state, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise StoreError(f"--resume: no checkpoint at {path}; start the run without --resume")
    return torch.load(path, map_location="cpu", weights_only=False)


def _flag(key: str) -> str:
    """A config key as its flag: ``optim.lr`` -> ``--lr``, ``batch_size`` -> ``--batch-size``."""
    return "--" + key.rsplit(".", 1)[-1].replace("_", "-")


def identity_differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """``--flag: the run has A, this one B`` for every setting of ``now`` that differs from ``saved``."""
    out = []
    for key in sorted(set(saved) | set(now)):
        old, new = saved.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += identity_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{_flag(prefix + key)}: the run has {old!r}, this one {new!r}")
    return out


def train(cfg: TrainConfig, *, model=None, source=None) -> TrainResult:
    """Train transcoders as ``cfg`` says; see the module docstring.

    ``model`` (a HookedTransformer) and ``source`` (an ``ActivationSource``) may be passed
    to skip loading; by default the model is loaded from ``cfg.model`` and the source is
    ``cfg.cache`` or the model streamed over ``cfg.data``. run.json records the data actually used
    (a store's records its source; activations passed in record None). Under torchrun, the process
    group this call creates is destroyed before it returns (a gloo group left to the
    interpreter's shutdown can abort the process after the work is done). On success every
    rank first waits at a barrier, so no rank tears its connections down while another is
    still finishing (a peer's closed connection makes gloo abort the other process).
    """
    import torch.distributed as dist

    already = dist.is_available() and dist.is_initialized()
    try:
        result = _train(cfg, model=model, source=source)
        if not already and dist.is_available() and dist.is_initialized():
            dist.barrier()
        return result
    finally:
        if not already and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def _claim(cfg: TrainConfig, dist_info: _Dist) -> Iterator[None]:
    """``cfg.out`` claimed for the run (:func:`interp.io.claim_output`). Under torchrun rank 0
    claims it for every rank: a refusal stops every rank with the same error, and the run is
    marked complete only after every rank has written its files."""
    if dist_info.world == 1:
        with claim_output(cfg.out, RUN_KIND, overwrite=cfg.overwrite, resume=cfg.resume):
            yield
        return
    import torch.distributed as dist

    with contextlib.ExitStack() as stack:
        error = None
        if dist_info.main:
            try:
                stack.enter_context(claim_output(cfg.out, RUN_KIND, overwrite=cfg.overwrite, resume=cfg.resume))
            except InterpError as err:
                error = err
        shared = [error]
        dist.broadcast_object_list(shared, src=0)
        if shared[0] is not None:
            raise error if error is not None else shared[0]
        yield
        dist.barrier()


def _train(cfg: TrainConfig, *, model=None, source=None) -> TrainResult:
    from interp.models import default_device

    device = cfg.device or default_device()
    dist_info = _init_distributed(device)
    with _claim(cfg, dist_info):
        return _run(cfg, dist_info, device, model=model, source=source)


def _run(cfg: TrainConfig, dist_info: _Dist, device: str, *, model=None, source=None) -> TrainResult:
    """The run on this process, inside the claim of ``cfg.out``."""
    out = Path(cfg.out)
    ckpt_path = _checkpoint_path(out, dist_info, cfg.parallel)
    if source is None:
        if model is None:
            from interp.models import load_model

            model = load_model(cfg.model, device=device)
        n_layers = model.cfg.n_layers
    else:
        n_layers = 1 + max(int(h.split(".")[1]) for h in source.hook_names if h.startswith("blocks."))
    layers = parse_layers(cfg.layers, n_layers if model is None else model.cfg.n_layers)
    architecture = model.cfg.original_architecture if model is not None else getattr(source, "model_architecture", None)
    wirings = cfg.wirings(layers, mlp_input_site(architecture))
    if cfg.parallel == "layers" and dist_info.world > len(wirings):  # every rank stops, not only the idle ones
        raise InterpError(
            f"{dist_info.world} processes for {len(wirings)} module(s) ({', '.join(w.key for w in wirings)}) with --parallel layers: "
            "use at most one process per module, or --parallel data"
        )
    mine = wirings[dist_info.rank :: dist_info.world] if cfg.parallel == "layers" else wirings
    streamed = source is None and cfg.cache is None
    if source is None:
        source = open_source(cfg, model, wirings, device)
    trained_on = _trained_on(cfg, model, source)
    # the data run.json records: what was streamed, a store's own source, or None (unknown),
    # in contexts of the length the activations have
    data = {"data": cfg.data if streamed else getattr(source, "data", None),
            "ctx_len": getattr(source, "ctx_len", cfg.ctx_len)}
    widths = source.widths()
    transcoders = {}
    for wiring in mine:
        arch = registry.get(cfg.arch)
        shape = cfg.arch_config(widths[wiring.hooks_in[0]], widths[wiring.hooks_out[0]], len(wiring.layers))
        module = arch.transcoder(shape, seed=cfg.seed * 1000 + wiring.layers[0])
        module.wire(wiring)
        transcoders[wiring.key] = module.to(device)
    data_world = dist_info.world if cfg.parallel == "data" else 1
    shard = (dist_info.rank, dist_info.world) if cfg.parallel == "data" else (0, 1)
    trainer = Trainer(transcoders, cfg.optim, cfg.steps, cfg.batch_size, world=data_world)
    position = (0, 0)
    torch.manual_seed(cfg.seed)
    record = None
    if cfg.resume:
        state = load_checkpoint(ckpt_path)
        differ = identity_differences(state["identity"], cfg.identity())
        if differ:
            raise StoreError(f"--resume: {out} was trained with other settings ({'; '.join(differ)}); resume with the same ones")
        trainer.load_state_dict(state["trainer"])
        position = tuple(state["position"])
        record = state.get("record")  # None in checkpoints written before the record was kept
    batches = PairedBatches(source, wirings, cfg.batch_size, seed=cfg.seed, start=position, shard=shard, device=device)
    keys = list(transcoders)
    try:
        return _loop(cfg, trainer, batches, keys, out, ckpt_path, dist_info, layers, wirings, data=data, trained_on=trained_on, record=record)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        kept = f"the last good checkpoint, {ckpt_path}, is kept" if ckpt_path.is_file() else "no checkpoint had been written yet"
        raise StoreError(
            f"the disk is full: writing to {out} failed ({err.strerror}); {kept}. Free some space there (or choose an "
            "--out on another disk) and continue with --resume true"
        ) from err


def _trained_on(cfg: TrainConfig, model, source) -> dict | None:
    """The fingerprint of the model whose activations train the run: the store's when reading a
    store (checked against ``model`` when there is one: it must be the model the store was cached
    from), else ``model``'s (None when neither is known)."""
    from interp.models.fingerprint import check_fingerprint, fingerprint

    stored = getattr(source, "manifest", {}).get("model")
    stored = stored if stored and stored.get("weights") else None
    if model is None:
        return stored
    if stored is not None:
        where = cfg.cache or getattr(source, "path", "the store")
        check_fingerprint(stored, model, what=f"the activations in {where}", error=StoreError, verb="were cached from",
                          fix=f"pass the --model they were cached from ({stored.get('name')!r} or its checkpoint directory)")
    return fingerprint(model)


def _loop(cfg, trainer: Trainer, batches: PairedBatches, keys, out: Path, ckpt_path: Path, dist_info: _Dist, layers,
          wirings: list[Wiring], data: dict, trained_on: dict | None = None, record: dict | None = None) -> TrainResult:
    from tqdm.auto import tqdm

    data = data or {"data": cfg.data, "ctx_len": cfg.ctx_len}
    wandb_run = _wandb(cfg) if dist_info.main else None
    record = record or {}
    history: list[dict[str, float]] = list(record.get("history", []))
    recent: dict[str, list[dict[str, float]]] = {key: list(record.get("recent", {}).get(key, [])) for key in keys}
    start_time = time.time() - record.get("seconds", 0.0)

    def so_far() -> dict:
        return {"history": history, "recent": recent, "seconds": time.time() - start_time}

    last_good = trainer.step_count if cfg.resume else None
    bar = tqdm(total=cfg.steps, initial=trainer.step_count, disable=not (cfg.progress and dist_info.main), desc="transcoders", unit="step")
    log_every = max(1, cfg.steps // 200)
    try:
        iterator = iter(batches)
        while trainer.step_count < cfg.steps:
            batch = next(iterator)
            batch = {key: batch[key] for key in keys}
            try:
                metrics = trainer.step(batch)
            except (TrainingDivergedError, DataError) as err:
                where = f"the last good checkpoint ({ckpt_path}, step {last_good}) is kept" if last_good is not None else "no checkpoint was written yet"
                if isinstance(err, DataError):
                    raise DataError(f"{err}; {where}. Check the model's weights and the activations it is trained on.") from err
                raise TrainingDivergedError(
                    f"training diverged: {err}, from finite activations; {where}. Lower --lr (now {cfg.optim.lr}) or "
                    "raise --batch-size and train again into a new --out (--resume continues only with the same settings)."
                ) from err
            summary = metrics.summary()
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in summary.items()})
            for key in keys:
                row = {"loss": metrics.loss[key], "L0": metrics.l0[key], "FVU": metrics.fvu[key], "dead": metrics.dead_fraction[key]}
                row.update({name: v for name, v in metrics.parts[key].items() if name.startswith(("l0_", "fvu_"))})  # a CLT's layers
                recent[key] = (recent[key] + [row])[-20:]
            if metrics.step % log_every == 0 or trainer.step_count == cfg.steps:
                history.append({"step": metrics.step, "lr": metrics.lr, **summary})
                if wandb_run is not None:
                    wandb_run.log({**summary, "lr": metrics.lr}, step=metrics.step)
            due = cfg.checkpoint_every is not None and trainer.step_count % cfg.checkpoint_every == 0
            if due and trainer.step_count < cfg.steps and (dist_info.main or cfg.parallel == "layers"):
                save_checkpoint(ckpt_path, trainer, batches.position, cfg.identity(), so_far())
                last_good = trainer.step_count
    finally:
        bar.close()
        trainer.preact_buffer.release()  # the evaluation after training allocates its own memory
    if dist_info.main or cfg.parallel == "layers":
        save_checkpoint(ckpt_path, trainer, batches.position, cfg.identity(), so_far())
    final = {key: {m: sum(r[m] for r in rows) / len(rows) for m in rows[0]} for key, rows in recent.items() if rows}
    if dist_info.main or cfg.parallel == "layers":
        metadata = {"model_name": cfg.model, "context_size": data["ctx_len"], "dataset_path": data["data"],
                    "model_fingerprint": trained_on}
        for key, module in trainer.transcoders.items():
            formats.save_module(module, out / key, metadata=metadata)
    if dist_info.world > 1 and cfg.parallel == "layers":
        import torch.distributed as dist

        gathered: list = [None] * dist_info.world
        dist.all_gather_object(gathered, final)
        final = {k: v for part in gathered for k, v in part.items()}
    result = TrainResult(
        out=str(out),
        layers=layers,
        arch=cfg.arch,
        steps=trainer.step_count,
        tokens=trainer.step_count * cfg.batch_size,
        seconds=time.time() - start_time,
        final={w.key: final[w.key] for w in wirings if w.key in final},
        config={**{k: v for k, v in asdict(cfg).items() if k != "dataset"}, **data},
        history=history,
        model_fingerprint=trained_on,
    )
    if dist_info.main:
        result.save()
    if wandb_run is not None:
        wandb_run.finish()
    return result


def _wandb(cfg: TrainConfig):
    if cfg.wandb_project is None:
        return None
    try:
        import wandb
    except ImportError as err:
        raise InterpError("--wandb_project needs Weights & Biases: pip install wandb (or drop --wandb_project)") from err
    return wandb.init(project=cfg.wandb_project, config=asdict(cfg))
