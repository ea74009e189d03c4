"""Benchmark: `interp transcoder eval` at GPT-2 small's shape, against the implementation before it got faster.

The documented GPT-2 recipe evaluates ReLU transcoders with 32x expansion (24,576 latents) on
layers 0-10 in batches of 32 contexts of 128 tokens. This times that evaluation on a randomly
initialised GPT-2-small-shaped model (a ``HookedTransformerConfig``, no download) and random
transcoders, on ``--tokens`` held-out tokens:

- ``before``: :mod:`interp.transcoders.evaluation` as it was at ``--baseline`` (read from git):
  every CE number a full forward from the tokens (3 x layers + 4 per batch);
- ``now``: the working tree's, whose interventions run from the intervened layer on the clean
  residual, whose statistics pass stops after the last layer it reads, and whose per-latent
  statistics reduce along contiguous memory.

The two passes (statistics, then CE losses) are timed separately, in one process, alternating
``now`` and ``before`` ``--repeats`` times and keeping the fastest of each; CPU seconds of the
process (one torch thread by default) measure the work, which a shared machine's load changes
less than wall time. Their numbers are compared (largest absolute difference of any CE value, and whether the
firing counts and top contexts are equal). Writes runs/benchmarks/transcoder_eval.json and
replaces the ``transcoder-eval`` section of docs/benchmarks.md.

    python benchmarks/transcoder_eval.py [--threads 1] [--tokens 512] [--repeats 2] [--layers 0-10] [--baseline 7e365ac]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docsections import replace_section

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python benchmarks/transcoder_eval.py"
BASELINE = "7e365ac"
"""The last commit whose evaluation ran every CE number as a full forward."""


def gpt2_shaped_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
                                  n_ctx=1024, act_fn="gelu_new", normalization_type="LN", seed=0)
    return HookedTransformer(cfg).eval()


def baseline_module(rev: str):
    """``interp/transcoders/evaluation.py`` at git revision ``rev``, imported under another name."""
    source = subprocess.run(["git", "show", f"{rev}:interp/transcoders/evaluation.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "evaluation_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("evaluation_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def timed(module, model, transcoders, tokens, batch_size: int) -> dict:
    """Both passes of ``module``'s evaluation, each timed in wall and in this process's CPU seconds."""
    import torch

    cfg = module.EvalConfig(run="", batch_size=batch_size, progress=False, device="cpu")
    with torch.no_grad():
        wall, cpu = time.perf_counter(), time.process_time()
        stats = module._first_pass(model, transcoders, tokens, cfg)
        first = (time.perf_counter() - wall, time.process_time() - cpu)
        means = {layer: s["y_sum"] / s["n"] for layer, s in stats.items()}
        wall, cpu = time.perf_counter(), time.process_time()
        ce = module._ce_passes(model, transcoders, tokens, means, batch_size, False)
        second = (time.perf_counter() - wall, time.process_time() - cpu)
    return {"stats": stats, "ce": ce, "first_wall_s": first[0], "first_cpu_s": first[1], "ce_wall_s": second[0],
            "ce_cpu_s": second[1]}


def best(runs: list[dict]) -> dict:
    """The fastest of repeated runs, per pass and clock (the others waited for the machine)."""
    keys = ("first_wall_s", "first_cpu_s", "ce_wall_s", "ce_cpu_s")
    return {**runs[0], **{k: min(r[k] for r in runs) for k in keys}}


def flat(ce: dict) -> dict[str, float]:
    return {f"{k}/{layer}": v for k, d in ce.items() for layer, v in (d.items() if isinstance(d, dict) else [("", d)])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=512, help="held-out tokens (contexts of 128)")
    parser.add_argument("--layers", default="0-10")
    parser.add_argument("--expansion", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the implementation to compare with")
    parser.add_argument("--repeats", type=int, default=2, help="alternate the two this many times; report the fastest")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args()

    import torch

    from interp.config import parse_layers
    from interp.transcoders import evaluation, registry

    torch.set_num_threads(args.threads)
    model = gpt2_shaped_model()
    layers = parse_layers(args.layers, model.cfg.n_layers)
    arch = registry.get("relu")
    transcoders = {layer: arch.transcoder(arch.config(d_in=768, d_out=768, d_sae=768 * args.expansion), seed=layer).eval()
                   for layer in layers}
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50256, (max(1, args.tokens // 128), 128), generator=g)
    tokens[:, 0] = 50256
    before = baseline_module(args.baseline)
    load_before = os.getloadavg()[0]
    repeats: dict[str, list[dict]] = {"now": [], "before": []}
    for _ in range(args.repeats):  # alternating, so a busy spell of the machine hits both
        repeats["now"].append(timed(evaluation, model, transcoders, tokens, args.batch_size))
        repeats["before"].append(timed(before, model, transcoders, tokens, args.batch_size))
    runs = {name: best(r) for name, r in repeats.items()}
    load_after = os.getloadavg()[0]

    now, old = runs["now"], runs["before"]
    a, b = flat(now["ce"]), flat(old["ce"])
    ce_diff = max(abs(a[k] - b[k]) for k in b)
    same_stats = all(torch.equal(now["stats"][la]["fired"], old["stats"][la]["fired"])
                     and torch.equal(now["stats"][la]["top_val"], old["stats"][la]["top_val"]) for la in layers)
    n = tokens.numel()
    rows = []
    for name, r in runs.items():
        wall, cpu = r["first_wall_s"] + r["ce_wall_s"], r["first_cpu_s"] + r["ce_cpu_s"]
        rows.append({"implementation": name, "first_pass_cpu_s": round(r["first_cpu_s"], 1), "ce_passes_cpu_s": round(r["ce_cpu_s"], 1),
                     "total_cpu_s": round(cpu, 1), "total_wall_s": round(wall, 1), "cpu_s_per_1k_tokens": round(1000 * cpu / n, 1),
                     "cpu_hours_per_1M_tokens": round(1e6 * cpu / n / 3600, 1)})
    machine = (f"{platform.machine()}, {os.cpu_count()} CPU cores, 1-minute load average {load_before:.2f} before and "
               f"{load_after:.2f} after, no GPU in this session, torch {torch.__version__}")
    summary = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"), "machine": machine,
               "threads": args.threads, "tokens": n, "layers": layers, "d_sae": 768 * args.expansion,
               "batch_size": args.batch_size, "baseline": args.baseline, "max_abs_ce_difference": ce_diff,
               "identical_statistics": same_stats, "results": rows}
    out = ROOT / "runs" / "benchmarks" / "transcoder_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    speedup = rows[1]["total_cpu_s"] / rows[0]["total_cpu_s"]
    lines = [
        (f"`interp transcoder eval` as the GPT-2 recipe runs it (ReLU transcoders, {768 * args.expansion:,} latents, "
         f"layers {args.layers}, batches of {min(args.batch_size, len(tokens))} contexts of 128 tokens) on a randomly initialised "
         f"GPT-2-small-shaped model, {n:,} held-out tokens: the statistics pass and the CE-loss passes, now and before "
         f"(`{args.baseline}`, every CE number a full forward)."),
        "",
        (f"Command: `{COMMAND} --tokens {args.tokens} --threads {args.threads} --repeats {args.repeats}`. Date: {summary['date']}. Machine: "
         f"{machine}; {args.threads} torch threads."),
        "",
        (f"CPU seconds of this process (`time.process_time`, {args.threads} torch thread(s): the work, steadier than wall "
         f"time on a shared machine), the fastest of {args.repeats} alternating runs each:"),
        "",
        "| implementation | statistics pass (CPU s) | CE passes (CPU s) | total (CPU s) | total (wall s) | CPU s per 1k tokens | CPU hours per 1M tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [(f"| {r['implementation']} | {r['first_pass_cpu_s']} | {r['ce_passes_cpu_s']} | {r['total_cpu_s']} | "
               f"{r['total_wall_s']} | {r['cpu_s_per_1k_tokens']} | {r['cpu_hours_per_1M_tokens']} |") for r in rows]
    lines += ["", (f"Now takes {1 / speedup:.2f} of the CPU time before ({speedup:.2f}x as fast). Largest difference of any "
                   f"CE value between the two: {ce_diff:.1e}; firing counts and top-context values "
                   f"{'identical' if same_stats else 'DIFFERENT'}.")]
    print("\n".join(lines))
    if not args.no_doc:
        replace_section("transcoder-eval", "Transcoder evaluation at GPT-2 small's shape", "\n".join(lines))


if __name__ == "__main__":
    main()
