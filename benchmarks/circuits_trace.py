"""Time tracing a 20-token prompt on the reference model (attribution, pruning, head paths,
feature descriptions), at 1 and 2 torch threads.

    python benchmarks/circuits_trace.py --transcoders runs/tc_circuits

Without --transcoders (or when the directory is missing) it uses randomly initialised
TopK transcoders of the same shape (8x expansion, k=16), which have as many active
features per token as trained ones, so the timing is comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

PROMPT = "The war lasted from the year 1745 to the year 1789 . Ann saw a red fox near the river"


def random_transcoders(model, expansion: int = 8, k: int = 16):
    from interp.transcoders import registry

    arch = registry.get("topk")
    d = model.cfg.d_model
    return {layer: arch.transcoder(arch.config(d_in=d, d_out=d, d_sae=expansion * d, k=k), seed=layer) for layer in range(model.cfg.n_layers)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--transcoders", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    from interp.circuits import TraceConfig, trace
    from interp.transcoders import load_run
    from interp.models import load_model

    model = load_model("reference", device="cpu")
    tokens = model.to_tokens(PROMPT)[0][:20]
    assert len(tokens) == 20, len(tokens)
    if args.transcoders and Path(args.transcoders).exists():
        tcs, source = load_run(args.transcoders), args.transcoders
    else:
        tcs, source = random_transcoders(model), "random TopK (8x, k=16)"
    one_target = TraceConfig(max_n_logits=1)  # the most probable next token, as the recorded timings measured
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        trace(model, tcs, tokens, cfg=one_target)  # warm-up
        times, attr = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            graph = trace(model, tcs, tokens, cfg=one_target)
            times.append(time.perf_counter() - start)
            attr.append(graph.seconds)
        results[f"{threads}_threads"] = {
            "trace_s_median": sorted(times)[len(times) // 2], "trace_s_all": times,
            "attribution_s_median": sorted(attr)[len(attr) // 2],
            "features": sum(n.kind == "feature" for n in graph.nodes), "edges": len(graph.edges()),
            "head_paths": len(graph.head_paths),
        }
    out = {
        "prompt_tokens": len(tokens), "transcoders": source, "results": results,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared), no GPU",
        "load_average": os.getloadavg(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
