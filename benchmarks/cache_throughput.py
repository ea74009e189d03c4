"""Activation-caching throughput: interp cache vs TransformerLens, SAELens and a bare forward.

For each model (the reference model, and a randomly initialised model of GPT-2 small's
exact shape), the same token contexts and the same hooks (the MLP input and the MLP
output of every layer) go through four methods, timed end to end:

- ``bare forward``: ``model(tokens, stop_at_layer=n_layers)`` under inference mode, no
  hooks, nothing kept: the floor any cache can reach.
- ``interp cache``: :func:`interp.cache.cache_activations` to a fresh store (float32).
- ``bare fused forward`` / ``interp cache --fused``: the same with interp's fused forward
  (:mod:`interp.cache.fused`; equal to transformer-lens' to float rounding, opt-in).
- ``TL run_with_cache + save``: ``model.run_with_cache(tokens, names_filter=hooks)`` per
  batch, as TransformerLens users write it, then ``safetensors.torch.save_file`` of the
  batch's activations. A second row adds ``stop_at_layer`` (the best a TL user can do).
- ``SAELens CacheActivationsRunner``: sae-lens' runner, which caches one hook per run, so
  it runs once per hook (each run stops its forward at its hook's layer, as sae-lens does).
  It is fed the same model object and the same pre-tokenised contexts (an in-memory
  ``datasets.Dataset`` with an ``input_ids`` column); its model loader is replaced by one
  that returns our model, since the runner otherwise loads by name from the hub.

Run (CPU, 2 threads)::

    python benchmarks/cache_throughput.py --threads 2 --ref-tokens 65536 --gpt2-tokens 8192 --out bench_cache.json

It prints a Markdown table (tokens/s, and the ratio to the bare forward) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from interp.cache import CacheConfig, cache_activations
from interp.hooks import resolve


def gpt2_shaped_model():
    """GPT-2 small's exact shape, randomly initialised (no download)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        model_name="gpt2-shape-random",
        n_layers=12,
        d_model=768,
        n_heads=12,
        d_head=64,
        d_mlp=3072,
        d_vocab=50257,
        n_ctx=1024,
        act_fn="gelu_new",
        normalization_type="LN",
        positional_embedding_type="standard",
        seed=0,
        device="cpu",
    )
    return HookedTransformer(cfg).eval()


def reference_tokens(model, n_ctx: int, ctx_len: int) -> torch.Tensor:
    from interp.data import token_batches

    return next(token_batches("reference", model.tokenizer, ctx_len=ctx_len, batch_size=n_ctx, seed=0))


def bare_forward(model, hooks, tokens, batch, workdir):
    stop = model.cfg.n_layers
    with torch.inference_mode():
        for start in range(0, len(tokens), batch):
            model(tokens[start : start + batch], stop_at_layer=stop)


def interp_cache(model, hooks, tokens, batch, workdir):
    cache_activations(model, hooks, tokens, workdir / "interp", CacheConfig(batch_size=batch, progress=False))


def bare_fused_forward(model, hooks, tokens, batch, workdir):
    from interp.cache.fused import fused_capture

    workspace: dict = {}
    for start in range(0, len(tokens), batch):
        fused_capture(model, tokens[start : start + batch], hooks, lambda name, act: None, workspace)


def interp_cache_fused(model, hooks, tokens, batch, workdir):
    cache_activations(model, hooks, tokens, workdir / "interp", CacheConfig(batch_size=batch, progress=False, fused=True))


def tl_run_with_cache(stop: bool):
    def run(model, hooks, tokens, batch, workdir):
        from safetensors.torch import save_file

        out = workdir / "tl"
        out.mkdir()
        kwargs = {"stop_at_layer": model.cfg.n_layers} if stop else {}
        with torch.inference_mode():
            for index, start in enumerate(range(0, len(tokens), batch)):
                _, cache = model.run_with_cache(tokens[start : start + batch], names_filter=hooks, **kwargs)
                tensors = {name: cache[name].reshape(-1, cache[name].shape[-1]).contiguous() for name in hooks}
                tensors["tokens"] = tokens[start : start + batch].to(torch.int32).contiguous()
                save_file(tensors, str(out / f"batch-{index:05d}.safetensors"))

    return run


def saelens_runner(model, hooks, tokens, batch, workdir):
    import datasets
    import sae_lens.cache_activations_runner as runner_module
    from sae_lens.cache_activations_runner import CacheActivationsRunner
    from sae_lens.config import CacheActivationsRunnerConfig

    dataset = datasets.Dataset.from_dict({"input_ids": tokens.tolist()})
    n_tokens = tokens.numel()
    original = runner_module.load_model
    runner_module.load_model = lambda **kwargs: model
    try:
        for index, hook in enumerate(hooks):
            d_in = model.cfg.d_model
            cfg = CacheActivationsRunnerConfig(
                dataset_path="in-memory",
                model_name=model.cfg.model_name,
                model_batch_size=batch,
                hook_name=hook,
                d_in=d_in,
                training_tokens=n_tokens,
                context_size=tokens.shape[1],
                new_cached_activations_path=str(workdir / f"saelens-{index}"),
                shuffle=False,
                dtype="float32",
                device="cpu",
                buffer_size_gb=(n_tokens * d_in * 4 + 0.5) / 1e9,
                prepend_bos=False,
            )
            if cfg.n_buffers != 1 or cfg.n_tokens_in_buffer != n_tokens:
                raise RuntimeError(f"sae-lens would cache {cfg.n_buffers} buffers of {cfg.n_tokens_in_buffer} tokens")
            CacheActivationsRunner(cfg, override_dataset=dataset).run()
    finally:
        runner_module.load_model = original


METHODS: dict[str, Callable] = {
    "bare forward (stop_at_layer)": bare_forward,
    "interp cache": interp_cache,
    "bare fused forward (interp.cache.fused, nothing kept)": bare_fused_forward,
    "interp cache --fused": interp_cache_fused,
    "TL run_with_cache + save": tl_run_with_cache(stop=False),
    "TL run_with_cache(stop_at_layer) + save": tl_run_with_cache(stop=True),
    "SAELens CacheActivationsRunner (1 run per hook)": saelens_runner,
}


def measure(model, tokens, batch: int, repeats: int, skip: set[str]) -> dict[str, dict]:
    hooks = resolve(model, "mlp_in") + resolve(model, "mlp_out")
    n_tokens = tokens.numel()
    bare_forward(model, hooks, tokens[:batch], batch, None)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in METHODS if name not in skip}
    for _ in range(repeats):
        for name in times:
            workdir = Path(tempfile.mkdtemp(prefix="cache-bench-"))
            try:
                start = time.perf_counter()
                METHODS[name](model, hooks, tokens, batch, workdir)
                times[name].append(time.perf_counter() - start)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    results = {}
    for name, values in times.items():
        best = min(values)
        results[name] = {"seconds": values, "tokens_per_s": n_tokens / best, "median_tokens_per_s": n_tokens / statistics.median(values)}
    return results


def table(title: str, results: dict[str, dict], n_tokens: int) -> str:
    bare = results["bare forward (stop_at_layer)"]["tokens_per_s"]
    lines = [
        f"**{title}** ({n_tokens:,} tokens; best of the runs' seconds: {'/'.join(f'{s:.1f}' for s in results['interp cache']['seconds'])} for interp)",
        "",
        "| method | tokens/s | time vs bare forward |",
        "|---|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['tokens_per_s']:,.0f} | {bare / r['tokens_per_s']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16, help="contexts per forward pass (all methods)")
    parser.add_argument("--ref-tokens", type=int, default=65536)
    parser.add_argument("--gpt2-tokens", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per method (best is reported); sae-lens runs once")
    parser.add_argument("--out", type=str, default=None, help="also write the results as JSON")
    parser.add_argument("--models", default="reference,gpt2", help="which models to run: reference, gpt2 or both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    datasets_logging = logging.getLogger("datasets")
    datasets_logging.disabled = True

    from interp.models import load_model

    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "machine": f"{platform.machine()} CPU, torch {torch.__version__}, {args.threads} threads, no GPU",
        "args": vars(args),
        "models": {},
    }
    for title, build, n_tokens, tokens_of in [
        ("reference model (4 layers, d_model 128)", lambda: load_model("reference", device="cpu"), args.ref_tokens,
         lambda m, n: reference_tokens(m, n, args.ctx_len)),
        ("GPT-2 small shape, random init (12 layers, d_model 768)", gpt2_shaped_model, args.gpt2_tokens,
         lambda m, n: torch.randint(0, m.cfg.d_vocab, (n, args.ctx_len), generator=torch.Generator().manual_seed(0))),
    ]:
        if title.split()[0].lower().replace("gpt-2", "gpt2") not in args.models.split(","):
            continue
        model = build()
        n_ctx = n_tokens // args.ctx_len
        tokens = tokens_of(model, n_ctx)
        fast = measure(model, tokens, args.batch, args.repeats, skip={"SAELens CacheActivationsRunner (1 run per hook)"})
        slow = measure(model, tokens, args.batch, 1, skip=set(METHODS) - {"SAELens CacheActivationsRunner (1 run per hook)"})
        results = {**fast, **slow}
        report["models"][title] = {"n_tokens": tokens.numel(), "results": results}
        print(table(title, results, tokens.numel()), flush=True)
        interp = results["interp cache"]["tokens_per_s"]
        sae = results["SAELens CacheActivationsRunner (1 run per hook)"]["tokens_per_s"]
        bare = results["bare forward (stop_at_layer)"]["tokens_per_s"]
        fused = results["interp cache --fused"]["tokens_per_s"]
        bare_fused = results["bare fused forward (interp.cache.fused, nothing kept)"]["tokens_per_s"]
        print(f"\ninterp / SAELens throughput: {interp / sae:.2f}x; interp overhead over bare forward: "
              f"{100 * (bare / interp - 1):.1f}%; with --fused: {fused / sae:.2f}x SAELens, "
              f"{fused / interp:.2f}x interp cache, overhead over the bare fused forward "
              f"{100 * (bare_fused / fused - 1):.1f}%\n", flush=True)
        del model
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
