"""Units comparison on the reference model: MLP neurons vs transcoder latents vs codebook codes.

For every MLP layer of the reference model (0-3), trains what is missing under
``runs/units/`` (gitignored):

- one TopK transcoder per layer (k = 32, 8x expansion: 1024 latents), all four trained
  together off one forward pass (``interp.transcoders.train``);
- one k = 1 codebook of 192 codes at each layer's MLP output (``blocks.L.hook_mlp_out``),
  the recipe of analyses/codebook_fsm.py: k-means initialisation, then a few codebook
  training steps with the model frozen (``interp.codebooks.train``), one run per layer so
  that each codebook is trained with the rest of the model intact, as it is measured;

then runs :func:`interp.units.compare_units` on held-out labelled corpus contexts and
writes analyses/out/units/{units.json, units.html} and the results section of
docs/units.md (between its ``units:begin`` / ``units:end`` markers). The budgets are
small enough for a shared 2-core CPU (about ten minutes of training); the defaults below
are what docs/units.md reports. Run:

    python analyses/units.py                      # trains what runs/units/ lacks, then compares
    python analyses/units.py --random-init --tc-tokens 8k --cb-steps 2 --kmeans-tokens 1024 \\
        --n-contexts 8 --runs /tmp/units --out /tmp/units/out --no-docs                      # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "analyses" / "out" / "units"
DOCS = ROOT / "docs" / "units.md"
BEGIN, END = "<!-- units:begin -->", "<!-- units:end -->"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", default="0-3", help="MLP layers to compare")
    p.add_argument("--runs", default=str(ROOT / "runs" / "units"), help="where trained transcoders and codebooks live")
    p.add_argument("--k", type=int, default=32, help="transcoder: active latents per token (TopK)")
    p.add_argument("--expansion", type=int, default=8, help="transcoder: latents per d_model")
    p.add_argument("--tc-tokens", default="300k", help="transcoder training tokens")
    p.add_argument("--tc-batch-size", type=int, default=2048, help="transcoder tokens per step")
    p.add_argument("--tc-lr", type=float, default=2e-3, help="transcoder learning rate")
    p.add_argument("--n-codes", type=int, default=192, help="codebook: codes per layer")
    p.add_argument("--cb-k", type=int, default=1, help="codebook: codes active per token")
    p.add_argument("--cb-steps", type=int, default=30, help="codebook training steps per layer (model frozen)")
    p.add_argument("--cb-batch-size", type=int, default=8, help="codebook: contexts per step")
    p.add_argument("--kmeans-tokens", type=int, default=16384, help="codebook: activation vectors for k-means")
    p.add_argument("--n-contexts", type=int, default=128, help="held-out contexts the comparison runs on")
    p.add_argument("--seed", type=int, default=0, help="training seed (the comparison's tokens use seed + 1)")
    p.add_argument("--random-init", action="store_true", help="use a random-init model (smoke test)")
    p.add_argument("--out", default=str(OUT), help="where units.json and units.html go")
    p.add_argument("--no-docs", action="store_true", help="do not update docs/units.md")
    return p.parse_args()


def model_spec(random_init: bool, tmp: Path) -> str:
    if not random_init:
        return "reference"
    from interp.reference.model import save_untrained

    return str(save_untrained(tmp))


def train_transcoders(args, spec: str, layers: list[int], runs: Path) -> dict:
    """Train the layers' TopK transcoders unless runs/units/transcoders holds a finished run."""
    from interp.transcoders import OptimConfig, TrainConfig, TrainResult, train

    out = runs / "transcoders"
    if (out / "run.json").is_file():
        done = TrainResult.load(out)
        if sorted(done.layers) == layers and done.config["k"] == args.k and done.config["expansion"] == args.expansion:
            wall = out / "wall_seconds.json"
            seconds = json.loads(wall.read_text())["seconds"] if wall.is_file() else done.seconds
            return {"trained_now": False, "seconds": seconds, "tokens": done.tokens, "final": done.final}
        raise SystemExit(f"{out} holds a run with other settings (layers {done.layers}); delete it or pass --runs")
    resume = (out / "checkpoint").is_dir()
    cfg = TrainConfig(model=spec, layers=",".join(map(str, layers)), arch="topk", k=args.k, expansion=args.expansion,
                      tokens=args.tc_tokens, batch_size=args.tc_batch_size, out=str(out), resume=resume,
                      seed=args.seed, device="cpu", progress=sys.stderr.isatty(), optim=OptimConfig(lr=args.tc_lr))
    from interp.io import atomic_write_text

    start = time.time()
    result = train(cfg)
    seconds = time.time() - start
    atomic_write_text(out / "wall_seconds.json", json.dumps({"seconds": seconds}) + "\n")
    return {"trained_now": True, "seconds": seconds, "tokens": result.tokens, "final": result.final}


def train_codebooks(args, spec: str, layers: list[int], runs: Path) -> dict:
    """Train one frozen-model codebook per layer unless runs/units/codebook_layer_L holds one."""
    from interp.codebooks import CodebookTrainConfig, train
    from interp.codebooks.insert import CODEBOOKS_CONFIG
    from interp.io import atomic_write_text

    info = {}
    for layer in layers:
        out = runs / f"codebook_layer_{layer}"
        result_path = out / "train_result.json"
        if (out / CODEBOOKS_CONFIG).is_file() and result_path.is_file():
            info[str(layer)] = {"trained_now": False, **json.loads(result_path.read_text())}
            continue
        start = time.time()
        cfg = CodebookTrainConfig(
            out=str(out), model=spec, sites=["mlp_out"], layers=str(layer), n_codes=args.n_codes, k=args.cb_k,
            batch_size=args.cb_batch_size, steps=args.cb_steps, freeze_model=True, kmeans_tokens=str(args.kmeans_tokens),
            replace_dead_every=None, eval_batches=4, checkpoint_every=args.cb_steps, seed=args.seed + layer,
            device="cpu",
        )
        trained = train(cfg).to_dict()
        info[str(layer)] = {"trained_now": True, **trained, "seconds": time.time() - start}
        atomic_write_text(result_path, json.dumps(info[str(layer)], indent=2) + "\n")
    return info


def docs_section(result, meta: dict) -> str:
    tc, cb = meta["budgets"]["transcoder"], meta["budgets"]["codebook"]
    zero = ", ".join(f"layer {k} {v:.4f}" for k, v in result.ce_zero.items())
    d_mlp = result.row(result.layers[0], "neurons").n_units
    classes = ", ".join(f"{len(v)} {k}" for k, v in result.groups.items())
    setup = (
        f"Produced by `python analyses/units.py` on {meta['date']} ({meta['machine']}); model `{result.model}`, "
        f"{result.n_contexts} held-out labelled contexts of {result.ctx_len} tokens ({result.n_positions} positions), "
        f"clean CE {result.ce_clean:.4f}, zero-ablated CE {zero}."
    )
    units = (
        f"Units: the {d_mlp} MLP neurons; a TopK transcoder (k = {tc['k']}, {tc['d_sae']} latents, trained on "
        f"{tc['tokens']} tokens, {tc['seconds']:.0f} s for all layers); a codebook of {cb['n_codes']} codes, "
        f"k = {cb['k']}, at the MLP output (k-means on {cb['kmeans_tokens']} vectors, then {cb['steps']} steps of "
        f"{cb['batch_size']} x 128 tokens with the model frozen; {cb['seconds']:.0f} s for all layers). "
        f"Specificity: best precision at recall >= {result.config['recall']}, mean over {classes}."
    )
    return f"{BEGIN}\n{setup}\n\n{units}\n\n{result.markdown()}\n\n{best_per_layer(result)}\n{END}"


def best_per_layer(result) -> str:
    """One line per layer: which kind wins each measure (computed from the result, not typed)."""
    from interp.units.result import KIND_LABELS

    measures = [("most faithful (recovered)", "recovered", max), ("lowest FVU", "fvu", min),
                ("most specific (all classes)", "specificity", max)]
    lines = ["Best kind per layer and measure:", ""]
    for layer in result.layers:
        rows = [r for r in result.rows if r.layer == layer]
        parts = []
        for label, attr, pick in measures:
            best = pick(rows, key=lambda r: getattr(r, attr))
            parts.append(f"{label}: {KIND_LABELS[best.kind]} ({getattr(best, attr):.3f})")
        lines.append(f"- layer {layer}: " + "; ".join(parts))
    return "\n".join(lines)


def update_docs(section: str) -> None:
    from interp.io import atomic_write_text

    text = DOCS.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOCS} lacks the {BEGIN} ... {END} markers the results go between")
    atomic_write_text(DOCS, text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :])


def main() -> int:
    args = parse()
    torch.set_num_threads(2)
    from interp.models import load_model
    from interp.config import parse_layers
    from interp.transcoders import load_run
    from interp.units import compare_units, labelled_data, load_codebooks

    t0 = time.time()
    runs = Path(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        spec = model_spec(args.random_init, Path(tmp))
        model = load_model(spec, device="cpu")
        layers = parse_layers(args.layers, model.cfg.n_layers)
        tc_info = train_transcoders(args, spec, layers, runs)
        print(f"transcoders: {tc_info['seconds']:.0f} s ({'trained now' if tc_info['trained_now'] else 'reused'})", flush=True)
        cb_info = train_codebooks(args, spec, layers, runs)
        cb_seconds = sum(v["seconds"] for v in cb_info.values())
        print(f"codebooks: {cb_seconds:.0f} s", flush=True)
    transcoders = load_run(runs / "transcoders")
    books = load_codebooks([runs / f"codebook_layer_{layer}" for layer in layers])
    data = labelled_data(model, args.n_contexts, 128, seed=args.seed + 1)
    t1 = time.time()
    result = compare_units(model, data.tokens, data.classes, layers=layers, transcoders=transcoders, codebooks=books,
                           groups=data.groups, model_name="reference" if not args.random_init else "random-init (smoke run)")
    result.metadata.update({
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": "2-core shared CPU, no GPU",
        "classes": data.source,
        "compare_seconds": round(time.time() - t1, 1),
        "budgets": {
            "transcoder": {"arch": "topk", "k": args.k, "expansion": args.expansion, "d_sae": args.expansion * model.cfg.d_model,
                           "tokens": tc_info["tokens"], "batch_size": args.tc_batch_size, "lr": args.tc_lr,
                           "seconds": tc_info["seconds"], "train_final": tc_info["final"]},
            "codebook": {"n_codes": args.n_codes, "k": args.cb_k, "steps": args.cb_steps, "batch_size": args.cb_batch_size,
                         "kmeans_tokens": args.kmeans_tokens, "seconds": cb_seconds,
                         "per_layer": {k: {m: v[m] for m in ("loss_original", "loss_codebooks", "relative_cost", "seconds")}
                                       for k, v in cb_info.items()}},
        },
    })
    out = Path(args.out)
    result.write(out)
    if not args.no_docs:
        update_docs(docs_section(result, result.metadata))
    print(result.summary())
    print(f"wrote {out / 'units.json'} and {out / 'units.html'} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
