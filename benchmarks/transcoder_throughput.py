"""Transcoder training throughput: interp against EleutherAI's sparsify, side by side in one run.

Config (issue 4): TopK, d_in 128 (the reference model's d_model), expansion 8 (1,024
latents), k 16, 4,096 tokens a step (32 contexts of 128), Adam, 2 CPU threads, one layer's
MLP (input ``blocks.L.ln2.hook_normalized`` -> output ``blocks.L.hook_mlp_out``).

Two modes, on the same tokens and the same activations for both libraries:

* ``cached``: the activations are a tensor in memory. interp: ``InMemoryActivations`` ->
  ``PairedBatches`` -> ``Trainer.step``. sparsify has no activation cache, so its own
  ``Trainer.fit`` is driven by a stand-in "model" whose hooked submodule returns the cached
  MLP input/output rows for the token positions in the batch (sparsify's real training
  step, data loader and bookkeeping; only the transformer forward is replaced by a lookup).
* ``e2e``: activations come from the reference model as training runs. interp:
  ``StreamingActivations`` with the fused forward, as ``interp transcoder train`` streams
  (``e2e_tl``: with transformer-lens' forward instead); sparsify: ``Trainer.fit`` on the
  transformer-lens model behind a thin wrapper that gives it the ``base_model``, ``device``
  and ``dummy_inputs`` sparsify reads, hooked at ``blocks.L.mlp`` (``e2e``), and on the same
  weights converted to a Hugging Face ``GPT2LMHeadModel``, the model class sparsify is
  written for, hooked at ``h.L.mlp`` (``e2e_hf``).
* ``forward`` / ``forward_fused``: the model's forward alone, transformer-lens'
  (``stop_at_layer``, no hooks) and interp's fused one, nothing trained.

Each library runs in its own long-lived worker process (sparsify from its own virtual
environment, e.g. ``python -m venv --system-site-packages /tmp/sparsify-venv`` and
``/tmp/sparsify-venv/bin/pip install --no-deps eai-sparsify natsort schedulefree``; it uses
the same torch). The parent alternates rounds between the two workers, so a load spike on
the shared machine hits both, and reports the median tokens/s over rounds. A step is timed
from the start of one step to the start of the next (sparsify: between the forward calls of
consecutive batches), so data loading, the optimiser and all bookkeeping are included.

If ``interp.transcoders`` is not committed yet, interp's side is a TopK step built directly
from :mod:`interp.kernels` and Adam (``impl`` in the JSON says which).

Run::

    python benchmarks/transcoder_throughput.py --out benchmarks/results/transcoder_throughput.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

D_SAE_EXPANSION = 8


@dataclass
class BenchConfig:
    """Settings of the throughput benchmark."""

    shape: Literal["reference", "gpt2"] = "reference"
    """``reference``: the reference model (d_in 128), every mode. ``gpt2``: GPT-2 small's shape
    (d_in 768, 24,576 latents, k 32) on activations of a randomly initialised GPT-2-small-shaped
    model, cached mode only, with the machine's matmul throughput measured in every round."""
    threads: int = 2
    """CPU threads for torch in every process."""
    layer: int | None = None
    """Which MLP to transcode; None = 3 at the reference shape (its last layer, so both libraries
    run every block), 6 at GPT-2's."""
    k: int | None = None
    """Active latents per token; None = 16 at the reference shape, 32 at GPT-2's."""
    expansion: int | None = None
    """Latents per input dimension; None = 8 at the reference shape (1,024), 32 at GPT-2's (24,576)."""
    contexts_per_step: int = 32
    """Contexts of 128 tokens per step (32 x 128 = 4,096 tokens)."""
    pool_steps: int | None = None
    """Steps' worth of distinct tokens cycled through, and steps per round (one e2e round is one
    pass over them); None = 8 at the reference shape, 4 at GPT-2's."""
    rounds: int = 5
    """Rounds per library and mode, alternated between the libraries."""
    warmup_steps: int | None = None
    """Untimed steps per worker and mode before the first round; None = 3 (reference), 2 (GPT-2)."""
    profile_steps: int = 0
    """Steps profiled with torch.profiler per library (cached mode) after the rounds; 0 = none."""
    seed: int = 0
    """Seed of the token order and of both libraries' initialisation."""
    sparsify_python: str = "/tmp/sparsify-venv/bin/python"
    """Python of the virtual environment that has eai-sparsify."""
    out: str = "benchmarks/results/transcoder_throughput.json"
    """Where the JSON results go."""
    microbench_reps: int | None = None
    """Repetitions of each kernel candidate in the kernel comparison; None = 15 (reference), 3 (GPT-2)."""
    interp_impl: Literal["auto", "trainer", "kernels"] = "auto"
    """interp's side: the transcoder Trainer, a kernels + Adam step, or auto (the Trainer once
    interp/transcoders is committed)."""

    def __post_init__(self) -> None:
        gpt2 = self.shape == "gpt2"
        defaults = {"layer": (3, 6), "k": (16, 32), "expansion": (D_SAE_EXPANSION, 32), "pool_steps": (8, 4),
                    "warmup_steps": (3, 2), "microbench_reps": (15, 3)}  # fmt: skip
        for name, (reference, gpt2_shape) in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, gpt2_shape if gpt2 else reference)
        if self.threads < 1 or self.rounds < 1 or self.pool_steps < 1:
            raise ValueError("threads, rounds and pool_steps must be positive")

    def modes(self, side: str) -> tuple[str, ...]:
        """The modes one library's worker runs: every mode at the reference shape, cached at GPT-2's."""
        if self.shape == "gpt2":
            return ("cached",)
        return INTERP_MODES if side == "interp" else SPARSIFY_MODES


# --------------------------------------------------------------------------------------- data


def reference_model():
    """The trained reference model, or the same-shape random init when its weights are absent."""
    from interp.reference import model as ref

    weights = Path(ref.__file__).parent / "weights" / "model.safetensors"
    if weights.exists():
        from interp import load_model

        return load_model("reference", device="cpu"), "trained reference weights"
    from interp.reference.tokenizer import build_tokenizer

    tok = build_tokenizer()
    return ref.build(ref.architecture(len(tok)), tok, seed=0), "random-init model of the reference shape"


def gpt2_shaped_model():
    """A randomly initialised model of GPT-2 small's shape (transformer-lens' own initialisation)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
                                  n_ctx=1024, act_fn="gelu_new", normalization_type="LN", seed=0)  # fmt: skip
    return HookedTransformer(cfg).eval(), "random-init GPT-2-small-shaped model (12 layers, 768, 50,257 tokens)"


def make_data(cfg: BenchConfig, workdir: Path) -> dict:
    """Tokens and the cached activations of layer ``cfg.layer``, written to ``workdir``.

    At GPT-2's shape the tokens are the reference corpus's (ids below 50,257; the model is
    random, so which text it reads matters little) run through :func:`gpt2_shaped_model`.
    """
    from interp.data import token_batches
    from interp.hooks import hook_name

    model, which = reference_model()
    tokenizer = model.tokenizer
    if cfg.shape == "gpt2":
        model, which = gpt2_shaped_model()
    n_ctx = cfg.pool_steps * cfg.contexts_per_step
    batches = token_batches("reference", tokenizer, ctx_len=128, batch_size=cfg.contexts_per_step, seed=cfg.seed)
    tokens = torch.cat([next(batches) for _ in range(cfg.pool_steps)])[:n_ctx]
    hin, hout = hook_name("ln2_normalized", cfg.layer), hook_name("mlp_out", cfg.layer)
    acts = {hin: [], hout: []}
    with torch.no_grad():
        for chunk in tokens.split(cfg.contexts_per_step):
            _, cache = model.run_with_cache(chunk, names_filter=[hin, hout], stop_at_layer=cfg.layer + 1)
            for name in acts:
                acts[name].append(cache[name].reshape(-1, cache[name].shape[-1]))
    data = {"tokens": tokens, "x": torch.cat(acts[hin]), "y": torch.cat(acts[hout]), "model": which}
    torch.save(data, workdir / "data.pt")
    return data


# ------------------------------------------------------------------------------ kernel choice


def kernel_microbench(cfg: BenchConfig, d_in: int) -> dict:
    """CPU time of each torch candidate for the sparse decoder, forward + backward, and of top-k."""
    import torch.nn.functional as F

    from interp.kernels import get_backend

    B, N, D, k = cfg.contexts_per_step * 128, d_in * cfg.expansion, d_in, cfg.k
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(N, D, generator=gen, requires_grad=True)
    pre = torch.randn(B, N, generator=gen)
    v0, idx = pre.topk(k, dim=1)
    # dense random output gradients, as in training (``.sum().backward()`` would pass a
    # broadcast tensor of ones with zero strides, which some backwards treat specially)
    grad_out = torch.randn(B, D, generator=gen)
    grad_values = torch.randn(B, k, generator=gen)

    candidates = {
        "interp torch backend: embedding_bag, per-latent embedding_bag backward (chosen)":
            lambda v: get_backend("torch").sparse_decode(v, idx, W),
        "embedding_bag with torch's own backward": lambda v: F.embedding_bag(idx, W, per_sample_weights=v, mode="sum"),
        "index_select + bmm": lambda v: torch.bmm(v.unsqueeze(1), W.index_select(0, idx.reshape(-1)).view(B, k, D))
        .squeeze(1),
        "dense scatter + matmul": lambda v: torch.zeros(B, N).scatter(1, idx, v) @ W,
    }
    result = {"shape": {"batch": B, "d_sae": N, "d_out": D, "k": k}, "decode_fwd_bwd_ms": {}}
    for _ in range(2):  # interleave candidates twice; keep the best of all
        for name, fn in candidates.items():
            times = []
            for _ in range(cfg.microbench_reps):
                v = v0.clone().requires_grad_()
                W.grad = None
                t = time.perf_counter()
                fn(v).backward(grad_out)
                times.append(time.perf_counter() - t)
            best = 1e3 * min(times)
            result["decode_fwd_bwd_ms"][name] = min(best, result["decode_fwd_bwd_ms"].get(name, best))
    times = []
    for _ in range(cfg.microbench_reps):
        p = pre.clone().requires_grad_()
        t = time.perf_counter()
        get_backend("torch").topk_activation(p, k)[0].backward(grad_values)
        times.append(time.perf_counter() - t)
    result["topk_fwd_bwd_ms"] = 1e3 * min(times)

    # The encoder: a dense matmul + top-k (interp) against sparsify-style sparse backward
    # (index_add_ of the k selected columns' gradients), forward + backward.
    x = torch.randn(B, D, generator=gen)
    W_enc = torch.randn(D, N, generator=gen, requires_grad=True)
    b_enc = torch.zeros(N, requires_grad=True)

    def dense_encoder():
        return get_backend("torch").topk_activation(torch.addmm(b_enc, x, W_enc), k)

    from interp.kernels import topk_encode

    encoders = {
        "topk_encode: addmm + top-k, embedding_bag sparse backward (interp)": lambda: topk_encode(x, W_enc, b_enc, k),
        "dense matmul backward (topk_activation of addmm)": dense_encoder,
        "index_add_ sparse backward (sparsify-style)": lambda: _SparseEncoder.apply(x, W_enc, b_enc, k),
    }
    result["encoder_fwd_bwd_ms"] = {}
    for _ in range(2):
        for name, fn in encoders.items():
            times = []
            for _ in range(cfg.microbench_reps):
                W_enc.grad = b_enc.grad = None
                t = time.perf_counter()
                fn()[0].backward(grad_values)
                times.append(time.perf_counter() - t)
            best = 1e3 * min(times)
            result["encoder_fwd_bwd_ms"][name] = min(best, result["encoder_fwd_bwd_ms"].get(name, best))
    result["auto_backend_on_cpu"] = get_backend("auto", "cpu").name
    return result


class _SparseEncoder(torch.autograd.Function):
    """Linear + top-k + ReLU whose backward touches only the selected columns (as sparsify's)."""

    @staticmethod
    def forward(ctx, x, W, b, k):
        values, indices = torch.addmm(b, x, W).topk(k, dim=1)
        values = values.relu_()
        ctx.save_for_backward(x, values, indices)
        ctx.shape = W.shape
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad_values, _):
        x, values, indices = ctx.saved_tensors
        g = grad_values * (values > 0)
        flat = indices.reshape(-1)
        outer = (g.unsqueeze(2) * x.unsqueeze(1)).reshape(-1, x.shape[1])
        grad_W = torch.zeros(ctx.shape[1], ctx.shape[0]).index_add_(0, flat, outer).T
        grad_b = torch.zeros(ctx.shape[1]).index_add_(0, flat, g.reshape(-1))
        return None, grad_W, grad_b, None


# ------------------------------------------------------------------------------------ workers


class InterpWorker:
    """interp's trainer (or, before it lands, a kernels + Adam TopK step) in both modes."""

    def __init__(self, cfg: BenchConfig, data: dict) -> None:
        self.cfg = cfg
        use_trainer = cfg.interp_impl == "trainer" or (cfg.interp_impl == "auto" and _transcoders_committed())
        self.impl = "interp.transcoders.Trainer" if use_trainer else "interp.kernels + torch.optim.Adam"
        self.data = data
        self.model = None

    def _trainer_iter(self, source):
        from interp.transcoders.data import PairedBatches
        from interp.transcoders.architectures.topk import TopKConfig, TopKTranscoder
        from interp.transcoders.trainer import OptimConfig, Trainer

        d = self.data["x"].shape[1]
        tc = TopKTranscoder(TopKConfig(d_in=d, d_out=d, d_sae=d * self.cfg.expansion, k=self.cfg.k), seed=self.cfg.seed)
        tokens = self.cfg.contexts_per_step * 128
        trainer = Trainer({"layer": tc}, OptimConfig(), total_steps=1_000_000, tokens_per_step=tokens)
        batches = iter(PairedBatches(source, [self.cfg.layer], tokens, seed=self.cfg.seed))

        def step():
            batch = next(batches)
            trainer.step({"layer": batch[next(iter(batch))]})

        return step

    def _kernels_iter(self, pairs):
        from interp.kernels import sparse_decode, topk_activation

        d, k = self.data["x"].shape[1], self.cfg.k
        n = d * self.cfg.expansion
        gen = torch.Generator().manual_seed(self.cfg.seed)
        W_dec = torch.randn(n, d, generator=gen)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        params = {
            "W_enc": torch.nn.Parameter(W_dec.T.clone()),
            "b_enc": torch.nn.Parameter(torch.zeros(n)),
            "W_dec": torch.nn.Parameter(W_dec),
            "b_dec": torch.nn.Parameter(torch.zeros(d)),
        }
        opt = torch.optim.Adam(params.values(), lr=1e-3)
        since_fired = torch.zeros(n, dtype=torch.long)

        def step():
            x, y = next(pairs)
            opt.zero_grad(set_to_none=True)
            values, indices = topk_activation(x @ params["W_enc"] + params["b_enc"], k)
            y_hat = sparse_decode(values, indices, params["W_dec"]) + params["b_dec"]
            loss = (y_hat - y).pow(2).sum(-1).mean()
            loss.backward()
            opt.step()
            with torch.no_grad():
                params["W_dec"].div_(params["W_dec"].norm(dim=1, keepdim=True))
                since_fired.add_(x.shape[0])
                since_fired[indices[values > 0]] = 0
            float(loss.detach())

        return step

    def _forward_iter(self, fused: bool):
        """The transformer's forward alone (nothing kept, nothing trained): the floor of e2e."""
        from interp.cache.fused import fused_capture
        from interp.hooks import hook_name

        tokens, ctx = self.data["tokens"], self.cfg.contexts_per_step
        hooks = [hook_name("ln2_normalized", self.cfg.layer), hook_name("mlp_out", self.cfg.layer)]
        state = {"at": 0}
        workspace: dict = {}  # reused between calls, as StreamingActivations does

        def step():
            start = state["at"] % (len(tokens) - ctx + 1)
            state["at"] = start + ctx
            if fused:
                fused_capture(self.model, tokens[start : start + ctx], hooks, lambda name, act: None, workspace)
                return
            with torch.inference_mode():
                self.model(tokens[start : start + ctx], stop_at_layer=self.cfg.layer + 1)

        return step

    def stepper(self, mode: str):
        from interp.hooks import hook_name

        hin, hout = hook_name("ln2_normalized", self.cfg.layer), hook_name("mlp_out", self.cfg.layer)
        tokens_per_step = self.cfg.contexts_per_step * 128
        if mode in ("forward", "forward_fused"):
            if self.model is None:
                self.model = reference_model()[0]
            return self._forward_iter(fused=mode == "forward_fused")
        if mode == "cached":
            if self.impl.startswith("interp.transcoders"):
                from interp.transcoders.data import InMemoryActivations

                return self._trainer_iter(InMemoryActivations({hin: self.data["x"], hout: self.data["y"]}))
            return self._kernels_iter(_cycle_pairs(self.data["x"], self.data["y"], tokens_per_step, self.cfg.seed))
        if self.model is None:
            self.model = reference_model()[0]
        from interp.cache import StreamingActivations

        source = StreamingActivations(
            self.model, [hin, hout], self.data["tokens"], forward_batch=self.cfg.contexts_per_step,
            fused=mode == "e2e",  # interp transcoder train streams with the fused forward (--fused-forward)
        )
        if self.impl.startswith("interp.transcoders"):
            return self._trainer_iter(source)
        return self._kernels_iter(_stream_pairs(source, hin, hout, tokens_per_step, self.cfg.seed))

    def run(self, step, n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            step()
        return time.perf_counter() - t


def _transcoders_committed() -> bool:
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        ["git", "ls-files", "interp/transcoders/trainer.py", "interp/transcoders/architectures/topk.py"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    return len(out.stdout.split()) == 2


def _cycle_pairs(x, y, batch, seed):
    epoch = 0
    while True:
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        for start in range(0, x.shape[0] - batch + 1, batch):
            rows = order[start : start + batch]
            yield x[rows], y[rows]
        epoch += 1


def _stream_pairs(source, hin, hout, batch, seed):
    epoch = 0
    while True:
        for b in source.batches(batch, seed=seed, epoch=epoch):
            yield b.acts[hin].float(), b.acts[hout].float()
        epoch += 1


class SparsifyWorker:
    """sparsify's own ``Trainer.fit`` in both modes (see the module docstring)."""

    impl = "sparsify.Trainer.fit (eager CPU decoder)"

    def __init__(self, cfg: BenchConfig, data: dict, workdir: Path) -> None:
        self.cfg, self.data, self.workdir = cfg, data, workdir
        self.model = None

    def _trainer(self, model, hookpoint: str, ids: torch.Tensor):
        from datasets import Dataset
        from sparsify import SaeConfig, Trainer, TrainConfig

        def dataset(rows):
            return Dataset.from_dict({"input_ids": rows.tolist()}).with_format("torch")

        tcfg = TrainConfig(
            SaeConfig(expansion_factor=self.cfg.expansion, k=self.cfg.k, transcode=True),
            batch_size=self.cfg.contexts_per_step,
            optimizer="adam",
            lr_warmup_steps=10,
            hookpoints=[hookpoint],
            init_seeds=[self.cfg.seed],
            save_every=10**9,
            log_to_wandb=False,
            save_dir=str(self.workdir / "sparsify-ckpt"),
        )
        # the schedule is sized by the dataset given at construction: make it long
        trainer = Trainer(tcfg, dataset(ids.repeat(50, 1)), model)
        per_round = torch.cat([ids, ids[: self.cfg.contexts_per_step]])  # one extra batch: see run()
        return trainer, dataset(per_round), model

    def stepper(self, mode: str):
        ctx = self.cfg.contexts_per_step
        if mode == "cached":
            n = self.data["x"].shape[0]
            ids = torch.arange(n).view(-1, 128)
            model = _CachedModel(self.data["x"], self.data["y"])
            trainer, ds, model = self._trainer(model, "mlp", ids)
        elif mode == "e2e_hf":
            model = hf_gpt2(reference_model()[0])
            trainer, ds, model = self._trainer(model, f"h.{self.cfg.layer}.mlp", self.data["tokens"])
        else:
            if self.model is None:
                self.model = _TLForSparsify(reference_model()[0])
            trainer, ds, model = self._trainer(self.model, f"blocks.{self.cfg.layer}.mlp", self.data["tokens"])
        return trainer, ds, model, ctx

    def run(self, state, n_batches: int) -> float:
        """Time ``n_batches - 1`` full steps of one ``fit`` call over ``n_batches`` batches."""
        trainer, ds, model, ctx = state
        trainer.dataset = ds.select(range(n_batches * ctx))
        trainer.global_step = 0
        starts = []
        handle = model.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
        try:
            trainer.fit()
        finally:
            handle.remove()
        return starts[-1] - starts[0]


class _CachedModel(torch.nn.Module):
    """Stands in for a transformer: its ``mlp`` submodule maps cached inputs to cached outputs."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.mlp = _Lookup()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    @property
    def base_model(self):
        return self

    @property
    def device(self):
        return torch.device("cpu")

    @property
    def dummy_inputs(self):
        return {"input_ids": torch.arange(128).view(1, 128)}

    def forward(self, input_ids, **_):
        self.mlp.out = self.y[input_ids]
        return self.mlp(self.x[input_ids])


class _Lookup(torch.nn.Module):
    out: torch.Tensor

    def forward(self, x):
        return self.out


def hf_gpt2(tl):
    """The transformer-lens model as a Hugging Face ``GPT2LMHeadModel`` with the same weights.

    Checked on the benchmark's tokens: the MLP input and output of every layer agree with
    transformer-lens' ``ln2.hook_normalized`` and ``hook_mlp_out`` to float rounding. (The
    unembedding's bias, which GPT-2's head lacks, is dropped: it does not touch the MLPs.)
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    c = tl.cfg
    config = GPT2Config(
        vocab_size=c.d_vocab, n_positions=c.n_ctx, n_embd=c.d_model, n_layer=c.n_layers, n_head=c.n_heads,
        n_inner=c.d_mlp, activation_function=c.act_fn, layer_norm_epsilon=c.eps, tie_word_embeddings=False,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    hf = GPT2LMHeadModel(config).eval()
    body = hf.transformer

    def norm(hf_ln, tl_ln):
        hf_ln.weight.copy_(getattr(tl_ln, "w", torch.ones_like(hf_ln.weight)))
        hf_ln.bias.copy_(getattr(tl_ln, "b", torch.zeros_like(hf_ln.bias)))

    with torch.no_grad():
        body.wte.weight.copy_(tl.embed.W_E)
        body.wpe.weight.copy_(tl.pos_embed.W_pos)
        for block, h in zip(tl.blocks, body.h, strict=True):
            a = block.attn
            norm(h.ln_1, block.ln1)
            norm(h.ln_2, block.ln2)
            # Conv1D weights are [in, out]; c_attn's output columns are q | k | v, head-major
            h.attn.c_attn.weight.copy_(torch.cat([W.permute(1, 0, 2).reshape(c.d_model, -1) for W in (a.W_Q, a.W_K, a.W_V)], 1))
            h.attn.c_attn.bias.copy_(torch.cat([a.b_Q.reshape(-1), a.b_K.reshape(-1), a.b_V.reshape(-1)]))
            h.attn.c_proj.weight.copy_(a.W_O.reshape(-1, c.d_model))
            h.attn.c_proj.bias.copy_(a.b_O)
            h.mlp.c_fc.weight.copy_(block.mlp.W_in)
            h.mlp.c_fc.bias.copy_(block.mlp.b_in)
            h.mlp.c_proj.weight.copy_(block.mlp.W_out)
            h.mlp.c_proj.bias.copy_(block.mlp.b_out)
        norm(body.ln_f, tl.ln_final)
        hf.lm_head.weight.copy_(tl.unembed.W_U.T)
    _check_same_mlps(tl, hf)
    return hf


def _check_same_mlps(tl, hf) -> None:
    tokens = torch.randint(0, tl.cfg.d_vocab, (4, 64), generator=torch.Generator().manual_seed(0))
    got: dict[int, tuple] = {}
    handles = [h.mlp.register_forward_hook(lambda m, i, o, layer=layer: got.__setitem__(layer, (i[0], o)))
               for layer, h in enumerate(hf.transformer.h)]  # fmt: skip
    with torch.no_grad():
        hf(tokens)
    for handle in handles:
        handle.remove()
    names = [f"blocks.{layer}.{n}" for layer in range(tl.cfg.n_layers) for n in ("ln2.hook_normalized", "hook_mlp_out")]
    _, cache = tl.run_with_cache(tokens, names_filter=names)
    for layer, (x, y) in got.items():
        for mine, name in ((x, f"blocks.{layer}.ln2.hook_normalized"), (y, f"blocks.{layer}.hook_mlp_out")):
            err = (mine - cache[name]).abs().max().item()
            if err > 1e-4 * cache[name].abs().max().item():
                raise RuntimeError(f"the Hugging Face conversion differs at {name} by {err:.2e}")


class _TLForSparsify(torch.nn.Module):
    """A transformer-lens model with the attributes sparsify's Trainer reads from a HF model."""

    def __init__(self, model) -> None:
        super().__init__()
        self.tl = model

    @property
    def base_model(self):
        return self.tl

    @property
    def device(self):
        return self.tl.cfg.device if isinstance(self.tl.cfg.device, torch.device) else torch.device(self.tl.cfg.device)

    @property
    def dummy_inputs(self):
        return {"input_ids": torch.zeros(1, 16, dtype=torch.long)}

    def forward(self, input_ids, **_):
        return self.tl(input_ids, return_type=None)


INTERP_MODES = ("cached", "e2e", "e2e_tl", "forward", "forward_fused")
SPARSIFY_MODES = ("cached", "e2e", "e2e_hf")


def worker_main(side: str, cfg: BenchConfig, workdir: Path) -> None:
    """Serve ``run MODE N`` lines on stdin with one JSON line each on stdout."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    data = torch.load(workdir / "data.pt")
    out = sys.stdout
    sys.stdout = sys.stderr  # sparsify prints; keep the protocol channel clean
    worker = InterpWorker(cfg, data) if side == "interp" else SparsifyWorker(cfg, data, workdir)
    states = {}
    for mode in cfg.modes(side):
        states[mode] = worker.stepper(mode)
        if side == "interp":
            worker.run(states[mode], cfg.warmup_steps)
        else:
            worker.run(states[mode], cfg.warmup_steps + 1)
    print(json.dumps({"ready": True, "impl": worker.impl, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), file=out, flush=True)  # fmt: skip
    for line in sys.stdin:
        command, mode, n = line.split()
        n = int(n)
        if command == "profile":
            print(json.dumps(_profile(worker, states[mode], n, side)), file=out, flush=True)
            continue
        if side == "interp":
            seconds, steps = worker.run(states[mode], n), n
        else:
            seconds, steps = worker.run(states[mode], n + 1), n
        print(json.dumps({"mode": mode, "steps": steps, "seconds": seconds}), file=out, flush=True)


def _profile(worker, state, n: int, side: str) -> dict:
    """torch.profiler over ``n`` steps: each op's self CPU time per step, largest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds = worker.run(state, n) if side == "interp" else worker.run(state, n + 1)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    # sparsify's fit runs one step more than is timed (see SparsifyWorker.run); it is profiled too
    profiled_steps = n if side == "interp" else n + 1
    per_step = lambda us: us / 1e3 / profiled_steps  # noqa: E731
    return {
        "steps": n,
        "seconds_per_step": seconds / n,
        "self_cpu_ms_per_step_all_ops": per_step(sum(e.self_cpu_time_total for e in ops)),
        "ops": [{"name": e.key, "calls": e.count, "self_cpu_ms_per_step": per_step(e.self_cpu_time_total)} for e in ops[:20]],
    }


def matmul_throughput(cfg: BenchConfig, d_in: int, reps: int = 2) -> dict:
    """GFLOP/s of the encoder's dense product alone on this machine, in both weight layouts.

    ``addmm``: ``b + x @ W`` with ``W`` ``(d_in, d_sae)`` (interp's layout); ``linear``:
    ``F.linear(x, W, b)`` with ``W`` ``(d_sae, d_in)`` (sparsify's). Best of ``reps``.
    """
    import torch.nn.functional as F

    B, N = cfg.contexts_per_step * 128, d_in * cfg.expansion
    gen = torch.Generator().manual_seed(1)
    x, W, b = torch.randn(B, d_in, generator=gen), torch.randn(d_in, N, generator=gen), torch.zeros(N)
    W_t = W.t().contiguous()
    flop = 2 * B * d_in * N
    best = {}
    for name, fn in (("addmm", lambda: torch.addmm(b, x, W)), ("linear", lambda: F.linear(x, W_t, b))):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        best[name] = flop / min(times) / 1e9
    return best


# ------------------------------------------------------------------------------------- parent


def _spawn(python: str, side: str, cfg: BenchConfig, workdir: Path, log) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg.threads), MKL_NUM_THREADS=str(cfg.threads),
               SPARSIFY_DISABLE_TRITON="1", WANDB_MODE="disabled")  # fmt: skip
    args = [python, str(Path(__file__).resolve()), "--worker", side, "--workdir", str(workdir),
            "--cfg", json.dumps(asdict(cfg))]  # fmt: skip
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)


def _ask(proc: subprocess.Popen, line: str | None) -> dict:
    if line is not None:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
    reply = proc.stdout.readline()
    if not reply:
        raise RuntimeError(f"a benchmark worker died (exit {proc.poll()}); see the worker log")
    return json.loads(reply)


def main(cfg: BenchConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    tokens_per_step = cfg.contexts_per_step * 128
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = make_data(cfg, workdir)
        d_in = int(data["x"].shape[1])
        kernels = kernel_microbench(cfg, d_in)
        log_path = Path(cfg.out).with_suffix(".workers.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            procs = {
                "interp": _spawn(sys.executable, "interp", cfg, workdir, log),
                "sparsify": _spawn(cfg.sparsify_python, "sparsify", cfg, workdir, log),
            }
            try:
                info = {side: _ask(p, None) for side, p in procs.items()}
                rounds = {side: {m: [] for m in cfg.modes(side)} for side in procs}
                # every run in order: round, side, mode, tokens/s, 1-minute load average just before it
                runs, matmul = [], []
                for r in range(cfg.rounds):
                    for mode in dict.fromkeys(cfg.modes("interp") + cfg.modes("sparsify")):
                        order = list(procs) if r % 2 == 0 else list(procs)[::-1]
                        for side in order:
                            if mode not in rounds[side]:
                                continue
                            load = os.getloadavg()[0]
                            res = _ask(procs[side], f"run {mode} {cfg.pool_steps}")
                            rate = res["steps"] * tokens_per_step / res["seconds"]
                            rounds[side][mode].append(rate)
                            runs.append({"round": r + 1, "side": side, "mode": mode, "tokens_per_s": rate,
                                         "seconds_per_step": res["seconds"] / res["steps"], "load_1min": load})  # fmt: skip
                    # the machine's matmul throughput, between the rounds of the two libraries
                    matmul.append({"round": r + 1, "load_1min": os.getloadavg()[0], **matmul_throughput(cfg, d_in)})
                profiles = {}
                if cfg.profile_steps:
                    profiles = {side: _ask(p, f"profile cached {cfg.profile_steps}") for side, p in procs.items()}
            finally:
                for p in procs.values():
                    p.stdin.close()
                    p.wait(timeout=60)
    summary = {
        side: {mode: statistics.median(v) for mode, v in modes.items()} for side, modes in rounds.items()
    }
    result = {
        "date": started,
        "machine": f"{os.cpu_count()}-core CPU, no GPU; torch {torch.__version__}; 1-minute load average "
                   f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        "config": asdict(cfg),
        "d_in": d_in,
        "d_sae": d_in * cfg.expansion,
        "tokens_per_step": tokens_per_step,
        "model": data["model"],
        "impl": {side: info[side]["impl"] for side in info},
        "tokens_per_s_rounds": rounds,
        "tokens_per_s_median": summary,
        "runs": runs,
        "speedup": {
            name: summary["interp"][mine] / summary["sparsify"][theirs]
            for name, (mine, theirs) in PAIRS.items()
            if _has(summary, mine, theirs)
        },
        # The rounds alternate between the libraries, so round i of each ran side by side.
        "speedup_per_round": _per_round(rounds),
        "matmul_gflops_rounds": matmul,
        "matmul": _matmul_fractions(summary, matmul, 2 * d_in * d_in * cfg.expansion),
        "profiles": profiles,
        "kernels": kernels,
    }
    if "forward" in summary["interp"]:
        # e2e = forward + training step. With transformer-lens' forward on both sides, no
        # trainer can beat sparsify's e2e by more than (forward + sparsify's step) / forward.
        result["e2e_ceiling_same_forward"] = _e2e_ceiling(summary)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


PAIRS = {"cached": ("cached", "cached"), "e2e": ("e2e", "e2e"), "e2e_vs_sparsify_hf": ("e2e", "e2e_hf"),
         "e2e_tl_forward": ("e2e_tl", "e2e")}  # fmt: skip


def _has(table: dict, mine: str, theirs: str) -> bool:
    return mine in table["interp"] and theirs in table["sparsify"]


def _matmul_fractions(summary: dict, matmul: list[dict], flop_per_token: int) -> dict:
    """The encoder product's share of the machine's measured matmul throughput, per library.

    Each library's cached tokens/s times the encoder's dense FLOPs per token (``2 d_in d_sae``:
    the one dense product of a TopK step; its backward is sparse in both) over the median
    ``addmm`` GFLOP/s measured between the rounds.
    """
    machine = statistics.median(m["addmm"] for m in matmul)
    return {
        "encoder_gflop_per_token": flop_per_token / 1e9,
        "machine_addmm_gflops_median": machine,
        "machine_linear_gflops_median": statistics.median(m["linear"] for m in matmul),
        "fraction": {side: summary[side]["cached"] * flop_per_token / 1e9 / machine for side in summary},
    }


def _per_round(rounds: dict) -> dict:
    """interp / sparsify in each round (the two ran back to back), as min / median / max."""
    out = {}
    for name, (mine, theirs) in PAIRS.items():
        if not _has(rounds, mine, theirs):
            continue
        ratios = [a / b for a, b in zip(rounds["interp"][mine], rounds["sparsify"][theirs], strict=True)]
        out[name] = {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios)}
    return out


def _e2e_ceiling(summary: dict) -> float:
    forward_s = 1 / summary["interp"]["forward"]
    sparsify_step_s = 1 / summary["sparsify"]["e2e"] - forward_s
    return (forward_s + max(sparsify_step_s, 0.0)) / forward_s


def markdown_gpt2(result: dict) -> str:
    """Every run, the medians, the matmul fractions and the profiles of a ``--shape gpt2`` run."""
    s, r, mm = result["tokens_per_s_median"], result["speedup"], result["matmul"]
    lines = ["| round | library | tokens/s | s / step | load avg (1 min) before |", "|---:|---|---:|---:|---:|"]
    lines += [f"| {x['round']} | {x['side']} | {x['tokens_per_s']:,.0f} | {x['seconds_per_step']:.3f} | {x['load_1min']:.2f} |"
              for x in result["runs"]]  # fmt: skip
    lines += ["", "| round | machine addmm GFLOP/s | machine linear GFLOP/s | load avg (1 min) |", "|---:|---:|---:|---:|"]
    lines += [f"| {m['round']} | {m['addmm']:.0f} | {m['linear']:.0f} | {m['load_1min']:.2f} |"
              for m in result["matmul_gflops_rounds"]]  # fmt: skip
    pr = result["speedup_per_round"]["cached"]
    lines += [
        "",
        (f"Median tokens/s: interp {s['interp']['cached']:,.0f}, sparsify {s['sparsify']['cached']:,.0f}: "
         f"**{r['cached']:.2f}x** (per round min / median / max {pr['min']:.2f} / {pr['median']:.2f} / {pr['max']:.2f})."),
        (f"Encoder product {mm['encoder_gflop_per_token'] * 1e3:.1f} MFLOP a token; the machine's `addmm` of that "
         f"shape: {mm['machine_addmm_gflops_median']:.0f} GFLOP/s (median; `F.linear` in sparsify's layout "
         f"{mm['machine_linear_gflops_median']:.0f}); fraction reached: interp {mm['fraction']['interp']:.2f}, "
         f"sparsify {mm['fraction']['sparsify']:.2f}."),
    ]
    for side, prof in result["profiles"].items():
        head = (f"Profile of {side} ({prof['steps']} steps, {prof['seconds_per_step']:.3f} s a step under the "
                "profiler), self CPU ms per step, top ops:")
        lines += ["", head, ""]
        lines += [f"- `{op['name']}` {op['self_cpu_ms_per_step']:.1f} ({op['calls']} calls)" for op in prof["ops"][:12]]
    return "\n".join(lines) + "\n\n" + _kernel_lines(result)


def markdown(result: dict) -> str:
    if result["config"]["shape"] == "gpt2":
        return markdown_gpt2(result)
    s, r = result["tokens_per_s_median"], result["speedup"]
    i, sp = s["interp"], s["sparsify"]
    lines = [
        "| mode | interp tokens/s | sparsify tokens/s | interp / sparsify |",
        "|---|---|---|---|",
        f"| on cached activations | {i['cached']:,.0f} | {sp['cached']:,.0f} | {r['cached']:.2f}x |",
        f"| end to end, sparsify on the transformer-lens model | {i['e2e']:,.0f} | {sp['e2e']:,.0f} | {r['e2e']:.2f}x |",
        (f"| end to end, sparsify on the Hugging Face GPT-2 conversion | {i['e2e']:,.0f} | {sp['e2e_hf']:,.0f} "
         f"| {r['e2e_vs_sparsify_hf']:.2f}x |"),
        (f"| end to end, interp with transformer-lens' forward (`--nofused-forward`) | {i['e2e_tl']:,.0f} "
         f"| {sp['e2e']:,.0f} | {r['e2e_tl_forward']:.2f}x |"),
        (f"| forward alone: transformer-lens (stop_at_layer) / interp fused | {i['forward']:,.0f} / "
         f"{i['forward_fused']:,.0f} | | |"),
        "",
        ("Per round (interp / sparsify of the rounds run back to back; min / median / max): "
         + "; ".join(f"{name} {v['min']:.2f} / {v['median']:.2f} / {v['max']:.2f}" for name, v in result["speedup_per_round"].items())
         + "."),
        "",
        (f"End-to-end ceiling with transformer-lens' forward on both sides (sparsify's training step at zero cost): "
         f"{result['e2e_ceiling_same_forward']:.2f}x."),
    ]
    return "\n".join(lines) + "\n\n" + _kernel_lines(result)


def _kernel_lines(result: dict) -> str:
    k = result["kernels"]
    lines = []
    lines.append(f"Sparse decoder, forward + backward, best of {result['config']['microbench_reps']} "
                 f"(batch {k['shape']['batch']}, d_sae {k['shape']['d_sae']}, d_out {k['shape']['d_out']}, "
                 f"k {k['shape']['k']}):")  # fmt: skip
    for name, ms in k["decode_fwd_bwd_ms"].items():
        lines.append(f"- {name}: {ms:.1f} ms")
    lines.append(f"- top-k + ReLU forward + backward (torch backend): {k['topk_fwd_bwd_ms']:.1f} ms")
    lines.append("")
    lines.append("Encoder (x @ W_enc + b_enc, top-k, ReLU), forward + backward:")
    for name, ms in k["encoder_fwd_bwd_ms"].items():
        lines.append(f"- {name}: {ms:.1f} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        argv = sys.argv
        side = argv[argv.index("--worker") + 1]
        workdir = Path(argv[argv.index("--workdir") + 1])
        cfg = BenchConfig(**json.loads(argv[argv.index("--cfg") + 1]))
        worker_main(side, cfg, workdir)
    else:
        import simple_parsing

        cfg = simple_parsing.parse(BenchConfig)
        result = main(cfg)
        print(json.dumps({k: result[k] for k in ("date", "model", "impl", "tokens_per_s_median", "speedup")}, indent=2))
        print(markdown(result))
