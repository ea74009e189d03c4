"""Benchmark: decode every neuron of a GPT-2-small-shaped model (36,864 neurons x 50,257 tokens).

Methods, each in a fresh subprocess (so peak memory is its own), side by side in one run:

- ``certified``: :func:`interp.neurons.decode` (bfloat16 candidates, float32 proof, chunked);
- ``exact``: :func:`interp.neurons.decode` with ``method="exact"`` (float32, chunked);
- ``naive``: the full ``W_out @ W_U`` product of all layers at once, then ``topk`` both ways.

All three see the same centred write vectors and the same unembedding (final LN weight
folded), so their answers are comparable. The model is randomly initialised from a
``HookedTransformerConfig`` with GPT-2 small's dimensions (no download). Extra memory is
the peak resident set size during the method (sampled every 5 ms from /proc) minus the
resident size just before it. Writes runs/benchmarks/neuron_decode.json and replaces the
``neuron-decode`` section of docs/benchmarks.md.

    python benchmarks/neuron_decode.py [--threads 2] [--methods certified,exact,naive]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from docsections import replace_section

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python benchmarks/neuron_decode.py"
K = 10


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples this process's resident set size every few milliseconds while active."""

    def __enter__(self):
        self.start = _rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def gpt2_shaped_model(n_layers: int = 12):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
                                  n_ctx=1024, act_fn="gelu_new", normalization_type="LN", seed=0)
    model = HookedTransformer(cfg)
    model.eval()
    return model


def worker(method: str, threads: int, out: str, n_layers: int = 12) -> None:
    import gc

    import torch

    torch.set_num_threads(threads)
    model = gpt2_shaped_model(n_layers)
    from interp.neurons import decode, unembedding

    gc.collect()
    with torch.no_grad():
        if method == "naive":
            W, _ = unembedding(model)
            W = W.float().contiguous()
            W_out = model.W_out.detach().float()
            centred = W_out - W_out.mean(dim=-1, keepdim=True)
            with PeakRSS() as mem:
                start = time.perf_counter()
                scores = centred @ W  # [layers, d_mlp, d_vocab], every score at once
                top = scores.topk(K, dim=-1)
                bottom = scores.topk(K, dim=-1, largest=False)
                seconds = time.perf_counter() - start
            top_ids, bottom_ids = top.indices.reshape(-1, K), bottom.indices.reshape(-1, K)
            top_values = top.values.reshape(-1, K)
        else:
            with PeakRSS() as mem:
                start = time.perf_counter()
                table = decode(model, k=K, method=method)
                seconds = time.perf_counter() - start
            top_ids, bottom_ids, top_values = table.top_ids, table.bottom_ids, table.top_values
    torch.save({"top_ids": top_ids, "bottom_ids": bottom_ids, "top_values": top_values,
                "seconds": seconds, "extra_bytes": mem.peak - mem.start, "threads": torch.get_num_threads()}, out)


def run_method(method: str, threads: int, directory: Path, n_layers: int = 12) -> dict:
    out = directory / f"{method}.pt"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, __file__, "--worker", method, "--threads", str(threads), "--out", str(out),
                    "--n-layers", str(n_layers)],
                   check=True, env=env)
    import torch

    return torch.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="certified,exact,naive")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--n-layers", type=int, default=12, help="fewer layers for a quick smoke run (implies --no-doc)")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.out, args.n_layers)
        return
    import torch

    methods = args.methods.split(",")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        results = {m: run_method(m, args.threads, Path(tmp), args.n_layers) for m in methods}
    reference = results.get("naive") or results.get("exact") or next(iter(results.values()))
    rows = []
    for method, r in results.items():
        same_top = float((r["top_ids"] == reference["top_ids"]).all(dim=1).float().mean())
        same_bottom = float((r["bottom_ids"] == reference["bottom_ids"]).all(dim=1).float().mean())
        rows.append({"method": method, "seconds": round(r["seconds"], 2), "extra_gb": round(r["extra_bytes"] / 2**30, 3),
                     "rows_identical_top": same_top, "rows_identical_bottom": same_bottom,
                     "max_abs_value_diff": float((r["top_values"] - reference["top_values"]).abs().max())})
    machine = (f"{platform.machine()}, {os.cpu_count()} CPU cores, 1-minute load average {load_before:.2f} before the run, "
               f"no GPU in this session, torch {torch.__version__}")
    summary = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"), "machine": machine,
               "threads": args.threads, "neurons": args.n_layers * 3072, "vocab": 50_257, "k": K, "results": rows}
    out = ROOT / "runs" / "benchmarks" / "neuron_decode.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"Decode all 36,864 neurons of a randomly initialised GPT-2-small-shaped model (from a HookedTransformerConfig, "
        f"no download) against its 50,257-token unembedding, top and bottom {K}. Target: <= 15 s and <= 2 GB extra on "
        "2 CPU cores.",
        "",
        f"Command: `{COMMAND}`. Date: {summary['date']}. Machine: {machine}; {args.threads} torch threads, each method "
        "in a fresh subprocess. Extra memory = peak RSS during the call minus RSS before it (sampled every 5 ms).",
        "",
        "| method | seconds | extra memory (GB) | rows with identical top-10 ids | identical bottom-10 | max abs diff of top values |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['seconds']:.2f} | {r['extra_gb']:.3f} | {r['rows_identical_top']:.4f} | "
                     f"{r['rows_identical_bottom']:.4f} | {r['max_abs_value_diff']:.2e} |")
    lines += ["", "Identity and differences are measured against `naive` (float32 `W_out @ W_U`). No GPU was available "
              "in this session, so the < 1 s GPU target was not measured."]
    print("\n".join(lines))
    if not args.no_doc and args.n_layers == 12:
        replace_section("neuron-decode", "Neuron decoding (interp.neurons.decode)", "\n".join(lines))


if __name__ == "__main__":
    main()
