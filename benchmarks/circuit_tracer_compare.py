"""Attribution side by side with circuit-tracer 0.5.0: same model, same transcoders, same
prompts, interleaved rounds.

circuit-tracer pins transformers<=4.57.3 and huggingface-hub<1.0, older than interp's, so it
runs in its own interpreter (a venv over the system packages, which keeps torch)::

    python -m venv --system-site-packages /tmp/ct-venv
    /tmp/ct-venv/bin/pip install --no-deps circuit-tracer==0.5.0 "huggingface_hub<1.0" \\
        "transformers==4.57.3" "tokenizers==0.22.1" "datasets==3.6.0"
    python benchmarks/circuit_tracer_compare.py --ct-python /tmp/ct-venv/bin/python

Each library runs in its own worker process, which loads the model and transcoders once,
warms up, then times one ``attribute`` call whenever the driver asks. A round asks each
worker once per prompt length, back to back (the order alternates between rounds), so the
two runs compared are seconds apart and see the same load on a shared machine; every run
and its round's ratio (circuit-tracer seconds / interp seconds) are listed, with the load
average before each. Model: the reference model; transcoders: ``--transcoders DIR`` or
random TopK ones (8x expansion, k=16, as many active features per token as trained ones).

circuit-tracer gets our transcoders as its ``SingleLayerTranscoder`` with a TopK activation
reading ``ln2.hook_normalized`` and writing ``hook_mlp_out``, and the reference weights
unfolded (as it loads its own models). Before timing, the circuit-tracer worker checks that
both libraries see the same model (centred logits) and compute the same edges (each active
feature's edge to the logit target, where both have the feature) on the longest prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def setup(transcoders: str | None):
    """(reference model, {layer: folded transcoder}, description of the transcoders)."""
    from circuits_trace import random_transcoders

    from interp.models import load_model
    from interp.transcoders import load_run

    model = load_model("reference", device="cpu")
    if transcoders and Path(transcoders).exists():
        tcs, source = load_run(transcoders), transcoders
    else:
        tcs, source = random_transcoders(model), "random TopK (8x, k=16)"
    return model, {layer: tc.folded() for layer, tc in tcs.items()}, source


def prompt_tokens(model, n: int) -> torch.Tensor:
    from circuits_trace import TEXT

    tokens = model.to_tokens(TEXT)[0][:n]
    if len(tokens) < n:
        raise SystemExit(f"the benchmark text has {len(tokens)} tokens, fewer than {n}")
    return tokens


def interp_runner(args):
    """(run(n) -> (seconds, active features), description) for interp."""
    from interp.circuits.attribution import AttributionConfig, attribute, token_target

    model, tcs, source = setup(args.transcoders)
    cfg = AttributionConfig(progress=False, threads=args.threads)

    def run(n):
        tokens = prompt_tokens(model, n)
        with torch.no_grad():
            top = int(model(tokens[None])[0, -1].argmax())
        start = time.perf_counter()
        graph = attribute(model, tcs, tokens, [token_target(model, top)], cfg)
        return time.perf_counter() - start, sum(node.kind == "feature" for node in graph.nodes)

    return run, {"library": "interp", "transcoders": source}


def circuit_tracer_model(model, tcs):
    """circuit-tracer's ReplacementModel of the reference model with our transcoders."""
    from circuit_tracer import ReplacementModel
    from circuit_tracer.transcoder.single_layer_transcoder import SingleLayerTranscoder, TranscoderSet
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformerConfig

    from interp.reference.model import weights_dir
    from interp.reference.tokenizer import load_tokenizer

    config = json.loads((weights_dir() / "config.json").read_text())
    k = tcs[0].cfg.k

    def topk(pre):
        values, idx = torch.topk(pre, k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, idx, torch.relu(values))

    sets = {
        layer: SingleLayerTranscoder(config["d_model"], tc.W_enc.shape[1], topk, layer, device=torch.device("cpu"),
                                     dtype=torch.float32)
        for layer, tc in tcs.items()
    }
    transcoders = TranscoderSet(sets, feature_input_hook="ln2.hook_normalized", feature_output_hook="hook_mlp_out",
                                scan="interp-reference")
    ct_model = ReplacementModel.from_config(HookedTransformerConfig(**config), transcoders,
                                            tokenizer=load_tokenizer(weights_dir()))
    state = load_file(str(weights_dir() / "model.safetensors"))
    # circuit-tracer wraps each MLP (and the unembedding) in a module holding the original
    for key in list(state):
        for part, wrapped in ((".mlp.", ".mlp.old_mlp."), ("unembed.", "unembed.old_unembed.")):
            new = key.replace(part, wrapped, 1)
            if part in key and new in ct_model.state_dict() and key not in ct_model.state_dict():
                state[new] = state.pop(key)
    ct_model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False)
    with torch.no_grad():  # after the state dict, which zero-fills the transcoders it does not hold
        for layer, tc in tcs.items():
            slt = ct_model.transcoders.transcoders[layer]
            slt.W_enc.copy_(tc.W_enc.T)
            slt.W_dec.copy_(tc.W_dec)
            slt.b_enc.copy_(tc.b_enc)
            slt.b_dec.copy_(tc.b_dec)
    return ct_model


def agreement(model, tcs, ct_model, tokens, ct_graph) -> dict:
    """Same model (centred logits) and same edges (feature -> logit target) in both libraries."""
    from interp.circuits.attribution import AttributionConfig, attribute, token_target

    with torch.no_grad():
        ours = model(tokens[None])[0]
        theirs = ct_model(tokens[None])[0]
    gap = ((ours - ours.mean(-1, keepdim=True)) - (theirs - theirs.mean(-1, keepdim=True))).abs().max().item()
    target = int(ct_graph.logit_targets[0].vocab_idx) if hasattr(ct_graph.logit_targets[0], "vocab_idx") else int(ct_graph.logit_targets[0])
    graph = attribute(model, tcs, tokens, [token_target(model, target)], AttributionConfig(progress=False))
    logit_row = next(i for i, node in enumerate(graph.nodes) if node.kind == "logit")
    ours_edges = {(n.layer, n.pos, n.index): float(graph.adjacency[logit_row, i])
                  for i, n in enumerate(graph.nodes) if n.kind == "feature"}
    features = ct_graph.active_features.tolist()
    theirs_edges = ct_graph.adjacency_matrix[-1, : len(features)]
    diffs = [abs(ours_edges[tuple(f)] - float(w)) for f, w in zip(features, theirs_edges) if tuple(f) in ours_edges]
    largest = max(abs(v) for v in ours_edges.values())
    return {"max_centred_logit_gap": gap, "features_compared": len(diffs),
            "max_edge_diff_over_max_edge": max(diffs) / largest if diffs else None}


def circuit_tracer_runner(args):
    """(run(n) -> (seconds, active features), description) for circuit-tracer, after the agreement check."""
    from circuit_tracer import attribute

    model, tcs, source = setup(args.transcoders)
    ct_model = circuit_tracer_model(model, tcs)

    def attribute_ct(n):
        tokens = prompt_tokens(model, n)
        start = time.perf_counter()
        graph = attribute(tokens, ct_model, max_n_logits=1, batch_size=args.ct_batch_size)
        return time.perf_counter() - start, graph, tokens

    _, graph, tokens = attribute_ct(max(args.lengths))
    info = {"library": "circuit-tracer", "transcoders": source, "batch_size": args.ct_batch_size,
            "agreement": agreement(model, tcs, ct_model, tokens, graph)}

    def run(n):
        seconds, graph, _ = attribute_ct(n)
        return seconds, int(graph.active_features.shape[0])

    return run, info


def worker(args) -> None:
    """Serve timings: after a warm-up, read a prompt length per line, answer with one timed run."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    run, info = (interp_runner if args.worker == "interp" else circuit_tracer_runner)(args)
    run(min(args.lengths))  # warm-up
    print("READY " + json.dumps(info), flush=True)
    for line in sys.stdin:
        seconds, features = run(int(line))
        print("RESULT " + json.dumps({"seconds": seconds, "features": features}), flush=True)


class Worker:
    """A worker process of one library, asked for one timed run at a time."""

    def __init__(self, python: str, library: str, args) -> None:
        command = [python, str(Path(__file__).resolve()), "--worker", library,
                   "--lengths", ",".join(map(str, args.lengths)), "--ct-batch-size", str(args.ct_batch_size)]
        if args.threads is not None:
            command += ["--threads", str(args.threads)]
        if args.transcoders:
            command += ["--transcoders", args.transcoders]
        self.library = library
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.info = json.loads(self._read("READY "))

    def _read(self, prefix: str) -> str:
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix):]
        raise SystemExit(f"the {self.library} worker stopped (run it with --worker {self.library} to see why)")

    def time(self, n: int) -> dict:
        load = os.getloadavg()[0]
        self.process.stdin.write(f"{n}\n")
        self.process.stdin.flush()
        return {**json.loads(self._read("RESULT ")), "load_average_before": load}

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def table(rounds: list[dict], lengths: list[int]) -> str:
    """Every run, then per length the median over rounds of each round's ratio."""
    lines = ["| round | order | tokens | interp (s) | circuit-tracer (s) | ratio (ct / interp) | load avg (1 min) before interp / ct |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r, rnd in enumerate(rounds, start=1):
        for n in lengths:
            i, c = rnd[n]["interp"], rnd[n]["circuit-tracer"]
            lines.append(f"| {r} | {rnd['order']} | {n} | {i['seconds']:.3f} | {c['seconds']:.3f} | "
                         f"{c['seconds'] / i['seconds']:.2f} | {i['load_average_before']:.1f} / {c['load_average_before']:.1f} |")
    lines += ["", "| tokens | median interp (s) | median circuit-tracer (s) | median per-round ratio | min-max per-round ratio |",
              "|---:|---:|---:|---:|---:|"]
    for n in lengths:
        i = median([rnd[n]["interp"]["seconds"] for rnd in rounds])
        c = median([rnd[n]["circuit-tracer"]["seconds"] for rnd in rounds])
        ratios = sorted(rnd[n]["circuit-tracer"]["seconds"] / rnd[n]["interp"]["seconds"] for rnd in rounds)
        lines.append(f"| {n} | {i:.3f} | {c:.3f} | **{median(ratios):.2f}** | {ratios[0]:.2f}-{ratios[-1]:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ct-python", default="/tmp/ct-venv/bin/python", help="interpreter with circuit-tracer 0.5.0")
    ap.add_argument("--transcoders", default=None, help="a run directory (default: random TopK transcoders)")
    ap.add_argument("--lengths", default="20,40,64", help="prompt lengths in tokens")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in both workers (0: each library's default)")
    ap.add_argument("--ct-batch-size", type=int, default=512, help="circuit-tracer's batch_size (its default: 512)")
    ap.add_argument("--out", default=None, help="write the JSON here as well")
    ap.add_argument("--worker", choices=["interp", "circuit-tracer"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.lengths = [int(n) for n in args.lengths.split(",")]
    if args.threads == 0:
        args.threads = None
    if args.worker:
        worker(args)
        return
    start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    workers = {"interp": Worker(sys.executable, "interp", args),
               "circuit-tracer": Worker(args.ct_python, "circuit-tracer", args)}
    rounds = []
    try:
        for r in range(args.rounds):
            order = ["interp", "circuit-tracer"] if r % 2 == 0 else ["circuit-tracer", "interp"]
            rnd: dict = {"order": " then ".join("ct" if lib == "circuit-tracer" else lib for lib in order)}
            for n in args.lengths:
                rnd[n] = {lib: workers[lib].time(n) for lib in order}
            rounds.append(rnd)
            print(f"round {r + 1}: " + ", ".join(
                f"{n} tokens {rnd[n]['circuit-tracer']['seconds'] / rnd[n]['interp']['seconds']:.2f}x"
                for n in args.lengths), file=sys.stderr)
    finally:
        for w in workers.values():
            w.close()
    out = {
        "command": "python benchmarks/circuit_tracer_compare.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": start, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, affinity {len(os.sched_getaffinity(0))}",
        "torch": torch.__version__, "threads": args.threads, "lengths": args.lengths, "rounds": rounds,
        "workers": {lib: w.info for lib, w in workers.items()},
    }
    print(json.dumps(out, indent=1))
    print(table(rounds, args.lengths))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
