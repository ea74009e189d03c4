"""Greater-than graphs through a cross-layer transcoder and through per-layer transcoders, at equal total L0.

Trains (or reuses, when OUT/tc and OUT/clt hold finished runs) per-layer TopK transcoders and a
TopK CLT (k per layer) on the reference model with the same budget, so both have total L0 = 4k;
evaluates both on held-out tokens; traces the greater-than prompts of analyses/greater_than.py
(the main prompt and the same seeded set) against the logit difference
mean(years > YY) - mean(years <= YY) through each, prunes with the default thresholds, and
prints a table: replacement score (of the full graph and of the pruned one), completeness and
the pruned graph's nodes. Writes OUT/clt_circuits.json and rewrites the numbers block of
docs/circuits.md (between the clt-greater-than markers).

    python analyses/clt_circuits.py                       # k=16, 8x expansion, 600k tokens each
    python analyses/clt_circuits.py --tokens 200k --docs ''   # quicker, docs untouched
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path

import torch
from greater_than import PROMPTS, replace_block, year_tokens

from interp.circuits import AttributionConfig, TraceConfig, difference_target, trace
from interp.io import atomic_write_text
from interp.transcoders import load_run

DOC_BEGIN, DOC_END = "<!-- clt-greater-than:begin -->", "<!-- clt-greater-than:end -->"
KINDS = {"tc": "per-layer TopK", "clt": "CLT, TopK per layer"}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def train_run(out: Path, arch: str, args) -> dict:
    """Train one run into ``out`` unless it is already there; its time and the load meanwhile."""
    from interp.transcoders import TrainConfig, train
    from interp.transcoders.training import RUN_FILE

    record = out / "training_time.json"
    if (out / RUN_FILE).is_file():
        return {**(json.loads(record.read_text()) if record.is_file() else {}), "trained": False}
    load_before = load_average()
    wall, cpu = time.perf_counter(), time.process_time()
    train(TrainConfig(model="reference", layers="all", arch=arch, k=args.k, expansion=args.expansion, tokens=args.tokens,
                      batch_size=2048, seed=args.seed, out=str(out), device="cpu", progress=False, checkpoint_every=None))
    times = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "load_before": load_before,
             "load_after": load_average(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    atomic_write_text(record, json.dumps(times, indent=2) + "\n")
    return {**times, "trained": True}


def evaluation(run: Path, args) -> dict:
    from interp.transcoders import evaluate
    from interp.transcoders.evaluation import EvalConfig

    result = evaluate(str(run), EvalConfig(run=str(run), tokens=args.eval_tokens, n_features=1, progress=False, device="cpu"))
    return {"total_l0": result.total_l0, "ce_clean": result.ce_clean, "ce_all_replaced": result.ce_all_spliced,
            "fvu": [r.fvu for r in result.layers]}


def prompts(model, args) -> list[tuple[torch.Tensor, int]]:
    """The greater-than prompt set of analyses/greater_than.py: its main prompt, then the seeded ones."""
    from interp.reference.tasks import TokenIds, greater_than_prompts

    prompt = PROMPTS["reference"]
    out = [(model.to_tokens(prompt)[0], int(re.search(r"17(\d\d) to", prompt).group(1)))]
    rows, yys = greater_than_prompts(TokenIds(model.tokenizer), args.n_prompts - 1, seed=args.seed + 7)
    return out + [(r, int(y)) for r, y in zip(rows, yys)]


def graph_row(graph) -> dict:
    counts = graph.counts()
    return {"features": counts["feature"], "errors": counts["error"], "nodes": len(graph.nodes), "edges": len(graph.edges()),
            "replacement": graph.scores["replacement"], "pruned_replacement": graph.scores["pruned_replacement"],
            "completeness": graph.scores["completeness"], "seconds": graph.seconds}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="analyses/out/clt_circuits", help="output directory (runs in OUT/tc and OUT/clt)")
    ap.add_argument("--k", type=int, default=16, help="TopK k per layer (total L0 = 4k for both)")
    ap.add_argument("--expansion", type=int, default=8, help="latents per layer / d_model")
    ap.add_argument("--tokens", default="600k", help="training tokens of each run")
    ap.add_argument("--eval-tokens", default="16k", help="held-out tokens for total L0 and CE")
    ap.add_argument("--n-prompts", type=int, default=8, help="greater-than prompts traced")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", default="docs/circuits.md", help="markdown file whose numbers block is rewritten ('' to skip)")
    args = ap.parse_args(argv)
    from interp.models import load_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model("reference", device="cpu")
    years = year_tokens(model)
    summary: dict = {"args": vars(args), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, no GPU used"}
    traced = {}
    for kind, arch in (("tc", "topk"), ("clt", "clt")):
        summary[kind] = {"training": train_run(out / kind, arch, args), "eval": evaluation(out / kind, args)}
        transcoders = load_run(out / kind)
        rows = []
        load_before = load_average()
        for tokens, yy in prompts(model, args):
            target = difference_target(model, years[yy + 1 :], years[: yy + 1], f"years > {yy:02d} minus years <= {yy:02d}")
            graph = trace(model, transcoders, tokens, target=target, cfg=TraceConfig(attribution=AttributionConfig(progress=False), heads=False))
            rows.append({"yy": yy, **graph_row(graph)})
            traced.setdefault(yy, {})[kind] = graph
        summary[kind]["graphs"] = rows
        summary[kind]["trace_load"] = f"{load_before} -> {load_average()}"
        summary[kind]["mean"] = {key: sum(r[key] for r in rows) / len(rows) for key in rows[0] if key != "yy"}
    first = next(iter(traced.values()))
    for kind in KINDS:
        first[kind].write(out / f"graph_{kind}")
    atomic_write_text(out / "clt_circuits.json", json.dumps(summary, indent=2) + "\n")
    print(table(summary))
    if args.docs:
        update_docs(Path(args.docs), summary)
    return summary


def table(s: dict) -> str:
    lines = [
        "| run | total L0 | CE all replaced (clean) | replacement | pruned replacement | completeness | pruned nodes | features | errors | edges |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, name in KINDS.items():
        e, m = s[kind]["eval"], s[kind]["mean"]
        lines.append(f"| {name} | {e['total_l0']:.1f} | {e['ce_all_replaced']:.3f} ({e['ce_clean']:.3f}) | {m['replacement']:.3f} | "
                     f"{m['pruned_replacement']:.3f} | {m['completeness']:.3f} | {m['nodes']:.1f} | {m['features']:.1f} | "
                     f"{m['errors']:.1f} | {m['edges']:.0f} |")
    lines += ["", "| YY | replacement, per-layer / CLT | pruned nodes, per-layer / CLT | features, per-layer / CLT |", "|---:|---:|---:|---:|"]
    for a, b in zip(s["tc"]["graphs"], s["clt"]["graphs"]):
        lines.append(f"| {a['yy']:02d} | {a['replacement']:.3f} / {b['replacement']:.3f} | {a['nodes']} / {b['nodes']} | "
                     f"{a['features']} / {b['features']} |")
    return "\n".join(lines)


def update_docs(path: Path, s: dict) -> None:
    a = s["args"]
    trained = []
    for kind, name in KINDS.items():
        t = s[kind]["training"]
        if "wall_s" in t:
            trained.append(f"{name}: {t['wall_s']:.0f} s wall / {t['cpu_s']:.0f} s CPU ({t['date']}, load average "
                           f"{t['load_before']} before, {t['load_after']} after)")
    lines = [
        (f"Produced by `python analyses/clt_circuits.py --k {a['k']} --expansion {a['expansion']} --tokens {a['tokens']}` "
         f"({s['date']}; {s['machine']}; shared with other jobs)."),
        "",
        f"Means over the {len(s['tc']['graphs'])} greater-than prompts; total L0 and CE on {a['eval_tokens']} held-out tokens.",
        "",
        table(s),
        "",
        (f"Training ({a['tokens']} tokens each, batch 2048, default learning rate): " + ("; ".join(trained) or "times not recorded")
         + f". Tracing (load average during): per-layer {s['tc']['trace_load']}, CLT {s['clt']['trace_load']}."),
    ]
    replace_block(path, DOC_BEGIN, DOC_END, lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
