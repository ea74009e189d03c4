"""Time attribution and whole traces on the reference model at several prompt lengths, with
torch on 1 thread, on 2 threads and with attribution's own choice (``threads=None``).

    python benchmarks/circuits_trace.py [--transcoders runs/tc_circuits] [--rounds 3]

Without --transcoders (or when the directory is missing) it uses randomly initialised
TopK transcoders of the same shape (8x expansion, k=16), which have as many active
features per token as trained ones, so the timing is comparable. Each round times every
setting once per prompt length (the order of the settings rotates between rounds, on a
shared machine), after one warm-up; every run is listed with the load average before it and,
for the automatic setting, the thread count it chose.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import torch

TEXT = " ".join(  # the first 20 tokens are the prompt of earlier versions of this benchmark
    ["The war lasted from the year 1745 to the year 1789 . Ann saw a red fox near the river ."] * 6
)


def random_transcoders(model, expansion: int = 8, k: int = 16):
    from interp.transcoders import registry

    arch = registry.get("topk")
    d = model.cfg.d_model
    return {layer: arch.transcoder(arch.config(d_in=d, d_out=d, d_sae=expansion * d, k=k), seed=layer) for layer in range(model.cfg.n_layers)}


class _Choices(logging.Handler):
    """Collects the thread counts attribution chose (its debug log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--transcoders", default=None)
    ap.add_argument("--lengths", default="20,64", help="prompt lengths in tokens")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settings", default="1,2,auto", help="torch thread settings to compare")
    ap.add_argument("--out", default=None, help="write the JSON here as well")
    args = ap.parse_args(argv)
    from interp.circuits import AttributionConfig, TraceConfig, attribute, token_target, trace
    from interp.models import load_model
    from interp.transcoders import load_run

    lengths = [int(n) for n in args.lengths.split(",")]
    settings = args.settings.split(",")
    model = load_model("reference", device="cpu")
    if args.transcoders and Path(args.transcoders).exists():
        tcs, source = load_run(args.transcoders), args.transcoders
    else:
        tcs, source = random_transcoders(model), "random TopK (8x, k=16)"
    choices = _Choices()
    logger = logging.getLogger("interp.circuits.threads")
    logger.addHandler(choices)
    logger.setLevel(logging.DEBUG)
    cpus = torch.get_num_threads()

    def run(setting: str, n: int, whole: bool) -> dict:
        tokens = model.to_tokens(TEXT)[0][:n]
        threads = None if setting == "auto" else int(setting)
        torch.set_num_threads(cpus if threads is None else threads)
        cfg = AttributionConfig(progress=False, threads=threads)
        load = os.getloadavg()[0]
        choices.messages.clear()
        start = time.perf_counter()
        if whole:
            graph = trace(model, tcs, tokens, cfg=TraceConfig(attribution=cfg, max_n_logits=1))
            attribution = graph.seconds
        else:
            with torch.no_grad():
                top = int(model(tokens[None])[0, -1].argmax())
            graph = attribute(model, tcs, tokens, [token_target(model, top)], cfg)
            attribution = None
        seconds = time.perf_counter() - start
        return {"setting": setting, "tokens": n, "what": "trace" if whole else "attribute", "seconds": seconds,
                "attribution_seconds": attribution, "load_average_before": load,
                "features": sum(node.kind == "feature" for node in graph.nodes), "chose": list(choices.messages)}

    run("1", min(lengths), whole=True)  # warm-up
    runs = []
    start_date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in range(args.rounds):
        order = settings[r % len(settings):] + settings[: r % len(settings)]
        for setting in order:
            for n in lengths:
                for whole in (False, True):
                    runs.append({"round": r + 1, **run(setting, n, whole)})
                    print(json.dumps(runs[-1]), file=sys.stderr)
    torch.set_num_threads(cpus)
    out = {
        "command": "python benchmarks/circuits_trace.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "transcoders": source, "started": start_date, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch default {cpus} threads",
        "torch": torch.__version__, "runs": runs,
    }
    print(json.dumps(out, indent=1))
    print(table(runs))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return out


def table(runs: list[dict]) -> str:
    lines = ["| round | threads | tokens | what | seconds | load avg before | chosen |", "|---:|---|---:|---|---:|---:|---|"]
    for run in runs:
        chose = "; ".join(dict.fromkeys(m.removeprefix("threads: ") for m in run["chose"])) if run["setting"] == "auto" else ""
        lines.append(f"| {run['round']} | {run['setting']} | {run['tokens']} | {run['what']} | {run['seconds']:.2f} | "
                     f"{run['load_average_before']:.1f} | {chose} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
