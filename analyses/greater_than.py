"""Greater-than through transcoders (Dunefsky et al. 2024, after Hanna et al. 2023).

Trace "The war lasted from the year 17YY to the year 17" on the reference model with
trained transcoders, name the features at the YY position and the attention heads that
move them to the last position, and test the circuit causally: ablating the features the
graph names at the YY position should lower the probability difference (mass on years
> YY minus mass on years <= YY) far more than ablating as many random active features
there. Writes JSON, an HTML report and the traced graph (JSON / GraphML / HTML), and
rewrites the numbers block of docs/circuits.md.

    python analyses/greater_than.py --transcoders runs/tc_circuits
    python analyses/greater_than.py --model gpt2            # clean probability difference only,
    python analyses/greater_than.py --model gpt2 --transcoders DIR   # or the full analysis
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

import torch

from interp.circuits import TraceConfig, ablate_features, as_dictionary, difference_target, trace
from interp.hooks import hook_name
from interp.io import atomic_write_text
from interp.transcoders import load_run

PROMPTS = {
    "reference": "The war lasted from the year 1745 to the year 17",
    "gpt2": "The war lasted from 1735 to 17",
}
DOC_BEGIN, DOC_END = "<!-- greater-than:begin -->", "<!-- greater-than:end -->"


def year_tokens(model) -> list[int]:
    """Token ids of the two-digit years "00".."99" (no leading space)."""
    ids = []
    vocab = model.tokenizer.get_vocab()
    for y in range(100):
        enc = [vocab[f"{y:02d}"]] if f"{y:02d}" in vocab else model.tokenizer.encode(f"{y:02d}", add_special_tokens=False)
        if len(enc) != 1:
            raise ValueError(f"year {y:02d} is not one token of this tokenizer")
        ids.append(enc[0])
    return ids


def prob_diff(logits: torch.Tensor, years: list[int], yy: int) -> float:
    """P(year > YY) - P(year <= YY) at the last position."""
    p = torch.softmax(logits[-1].float(), -1)
    return float(p[years[yy + 1 :]].sum() - p[years[: yy + 1]].sum())


def clean_prob_diff(model, prompt: str, yy: int) -> float:
    with torch.no_grad():
        return prob_diff(model(model.to_tokens(prompt))[0], year_tokens(model), yy)


def yy_position(model, tokens: torch.Tensor, yy: int) -> int:
    year = year_tokens(model)[yy]
    return max(i for i, t in enumerate(tokens.tolist()) if t == year)


def active_features(model, transcoders, tokens: torch.Tensor, pos: int) -> list[tuple[int, int, int]]:
    """``(layer, pos, feature)`` of every feature active at ``pos`` (per-layer transcoders or a CLT)."""
    d = as_dictionary(model, transcoders)
    names = {d.read_hook(layer) for layer in d.layers}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens[None], names_filter=lambda n: n in names)
    out = []
    for layer in d.layers:
        acts = d.encode(layer, cache[d.read_hook(layer)][0, pos])
        out += [(layer, pos, int(f)) for f in torch.nonzero(acts > 0).flatten()]
    return out


def ablate_head(model, tokens: torch.Tensor, layer: int, head: int, query: int) -> torch.Tensor:
    def hook(z, hook):
        z = z.clone()
        z[:, query, head] = 0.0
        return z

    with torch.no_grad(), model.hooks(fwd_hooks=[(hook_name("attn_z", layer), hook)]):
        return model(tokens[None])[0]


def analyse_prompt(model, transcoders, tokens, yy, years, cfg, n_random, rng):
    """Trace one prompt; ablate its YY-position graph features and random ones."""
    target = difference_target(model, years[yy + 1 :], years[: yy + 1], f"years > {yy:02d} minus years <= {yy:02d}")
    graph = trace(model, transcoders, tokens, target=target, cfg=cfg)
    pos = yy_position(model, tokens, yy)
    last = len(tokens) - 1
    named = [(n.layer, n.pos, n.index) for n in graph.nodes if n.kind == "feature" and n.pos == pos]
    with torch.no_grad():
        clean = prob_diff(model(tokens[None])[0], years, yy)
    result = {"yy": yy, "clean": clean, "n_named": len(named), "graph": graph}
    if not named:
        result.update(ablated=clean, random=[clean] * n_random)
        return result
    result["ablated"] = prob_diff(ablate_features(model, transcoders, tokens[None], named)[0], years, yy)
    pool = [f for f in active_features(model, transcoders, tokens, pos) if f not in set(named)]
    randoms = []
    for _ in range(n_random):
        pick = rng.sample(pool, min(len(named), len(pool)))
        randoms.append(prob_diff(ablate_features(model, transcoders, tokens[None], pick)[0], years, yy))
    result["random"] = randoms
    # heads moving information from the YY position to the last position
    heads: dict[tuple[int, int], float] = {}
    for p in graph.head_paths:
        if graph.nodes[p.source].pos == pos and p.query == last:
            heads[(p.layer, p.head)] = heads.get((p.layer, p.head), 0.0) + p.weight
    result["heads"] = heads
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="reference", help="'reference' or 'gpt2'")
    ap.add_argument("--transcoders", default=None, help="run directory of `interp transcoder train` (per-layer or --arch clt)")
    ap.add_argument("--out", default="analyses/out/greater_than", help="output directory")
    ap.add_argument("--n-prompts", type=int, default=8, help="prompts (different YY and nouns) for the ablations")
    ap.add_argument("--n-random", type=int, default=5, help="random ablations per prompt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", default="docs/circuits.md", help="markdown file whose numbers block is rewritten ('' to skip)")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    from interp.models import load_model

    start = time.time()
    model = load_model(args.model, device="cpu")
    years = year_tokens(model)
    prompt = PROMPTS.get(args.model, PROMPTS["reference"])
    main_yy = int(re.search(r"17(\d\d) to", prompt).group(1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"model": args.model, "prompt": prompt, "clean_prob_diff": clean_prob_diff(model, prompt, main_yy)}
    if args.transcoders is None:
        summary["note"] = "no transcoders given: clean probability difference only"
    else:
        transcoders = as_dictionary(model, load_run(args.transcoders))  # per-layer transcoders or a CLT
        cfg = TraceConfig()
        main_tokens = model.to_tokens(prompt)[0]
        prompts = [(main_tokens, main_yy)]
        if args.model == "reference":
            from interp.reference.tasks import TokenIds, greater_than_prompts

            rows, yys = greater_than_prompts(TokenIds(model.tokenizer), args.n_prompts - 1, seed=args.seed + 7)
            prompts += [(r, int(y)) for r, y in zip(rows, yys)]
        results = [analyse_prompt(model, transcoders, t, yy, years, cfg, args.n_random, rng) for t, yy in prompts]
        first = results[0]
        graph = first["graph"]
        paths = graph.write(out)
        pos = yy_position(model, main_tokens, main_yy)
        yy_features = sorted(
            ((graph.node_id(i), n.influence, n.activation, [t for t, _ in graph.feature_info[graph.node_id(i)]["top_tokens"][:5]])
             for i, n in enumerate(graph.nodes) if n.kind == "feature" and n.pos == pos),
            key=lambda r: -r[1],
        )
        heads = sorted(first["heads"].items(), key=lambda kv: -abs(kv[1]))
        head_checks = []
        last = len(main_tokens) - 1
        for (layer, head), weight in heads[:3]:
            pd = prob_diff(ablate_head(model, main_tokens, layer, head, last), years, main_yy)
            head_checks.append({"head": f"L{layer}H{head}", "attributed_weight": weight, "prob_diff_without_head_at_last_pos": pd})
        drop_named = [r["clean"] - r["ablated"] for r in results]
        drop_random = [r["clean"] - sum(r["random"]) / len(r["random"]) for r in results]
        summary.update(
            transcoders=args.transcoders,
            trace_seconds=graph.seconds,
            graph={"features": sum(n.kind == "feature" for n in graph.nodes), "edges": len(graph.edges()),
                   "head_paths": len(graph.head_paths), **graph.scores},
            yy_position=pos,
            yy_features=[{"node": a, "influence": b, "activation": c, "top_tokens": d} for a, b, c, d in yy_features],
            heads_moving_yy=[{"head": f"L{l}H{h}", "weight": w} for (l, h), w in heads],
            head_ablation=head_checks,
            prompts=[{"yy": r["yy"], "clean": r["clean"], "n_named": r["n_named"], "ablate_named": r["ablated"],
                      "ablate_random_mean": sum(r["random"]) / len(r["random"])} for r in results],
            mean_drop_named=sum(drop_named) / len(drop_named),
            mean_drop_random=sum(drop_random) / len(drop_random),
            files={k: str(v) for k, v in paths.items()},
        )
    summary["seconds"] = time.time() - start
    atomic_write_text(out / "greater_than.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "greater_than.html", report_html(summary))
    if args.docs and args.model == "reference" and args.transcoders is not None:
        update_docs(Path(args.docs), summary)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("yy_features", "prompts")}, indent=2))
    return summary


def report_html(s: dict) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if "prompts" not in s:
        return f"<html><body><h1>Greater-than on {s['model']}</h1><p>{s['prompt']}: clean probability difference {s['clean_prob_diff']:.3f}</p></body></html>"
    fig = make_subplots(rows=1, cols=2, subplot_titles=("probability difference per prompt", "heads moving the YY position"))
    yy = [f"YY={p['yy']:02d}" for p in s["prompts"]]
    for key, name in (("clean", "clean"), ("ablate_named", "graph's YY features ablated"), ("ablate_random_mean", "as many random features ablated")):
        fig.add_trace(go.Bar(x=yy, y=[p[key] for p in s["prompts"]], name=name), row=1, col=1)
    fig.add_trace(go.Bar(x=[h["head"] for h in s["heads_moving_yy"]], y=[h["weight"] for h in s["heads_moving_yy"]], name="attributed weight"), row=1, col=2)
    fig.update_layout(height=500, template="plotly_white", barmode="group")
    rows = "".join(f"<tr><td>{f['node']}</td><td>{f['influence']:.3f}</td><td>{f['activation']:.2f}</td><td>{', '.join(map(repr, f['top_tokens']))}</td></tr>" for f in s["yy_features"])
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>greater-than</title></head><body style='font-family:sans-serif'>"
        f"<h1>Greater-than through transcoders ({s['model']})</h1><p>{s['prompt']}: clean probability difference {s['clean_prob_diff']:.3f}; "
        f"mean drop when ablating the graph's YY features {s['mean_drop_named']:.3f} vs {s['mean_drop_random']:.3f} for as many random features. "
        "The traced graph: <a href='graph.html'>graph.html</a>.</p>"
        + fig.to_html(full_html=False, include_plotlyjs=True)
        + f"<h2>Features at the YY position</h2><table border=1><tr><th>node</th><th>influence</th><th>activation</th><th>top tokens</th></tr>{rows}</table></body></html>"
    )


def replace_block(path: Path, begin: str, end: str, lines: list[str]) -> None:
    """Rewrite what lies between the markers ``begin`` and ``end`` of ``path`` with ``lines``
    (nothing when the file or a marker is missing)."""
    if not path.is_file():
        return
    text = path.read_text()
    if begin not in text or end not in text:
        return
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(path, head + "\n".join([begin, *lines, end]) + tail)


def update_docs(path: Path, s: dict) -> None:
    lines = [
        f"Produced by `python analyses/greater_than.py --transcoders {s['transcoders']}` "
        f"({time.strftime('%Y-%m-%d', time.gmtime())}, 2-core shared CPU, no GPU).",
        "",
        f"- Prompt `{s['prompt']}`: clean probability difference **{s['clean_prob_diff']:.3f}**; "
        f"graph of {s['graph']['features']} features, {s['graph']['edges']} edges, {s['graph']['head_paths']} head paths, "
        f"replacement score {s['graph']['replacement']:.3f}, completeness {s['graph']['completeness']:.3f}; attribution (edge matrix) took {s['trace_seconds']:.1f} s.",
        f"- Features at the YY position (position {s['yy_position']}), by influence: "
        + ", ".join(f"`{f['node']}` ({f['influence']:.3f}; top tokens {' '.join(f['top_tokens'][:3])})" for f in s["yy_features"][:6]) + ".",
        "- Heads moving the YY position to the last position (summed head-path weight): "
        + ", ".join(f"{h['head']} {h['weight']:+.3f}" for h in s["heads_moving_yy"][:5]) + ".",
        "- Zeroing a head's output at the last position: "
        + ", ".join(f"{h['head']} -> probability difference {h['prob_diff_without_head_at_last_pos']:.3f}" for h in s["head_ablation"]) + ".",
        f"- Ablation over {len(s['prompts'])} prompts: ablating the graph's YY-position features lowers the probability "
        f"difference by **{s['mean_drop_named']:.3f}** on average; ablating as many random active features at that position "
        f"lowers it by **{s['mean_drop_random']:.3f}**.",
        "",
        "| YY | clean | graph's YY features ablated | random features ablated (mean) | features ablated |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {p['yy']:02d} | {p['clean']:.3f} | {p['ablate_named']:.3f} | {p['ablate_random_mean']:.3f} | {p['n_named']} |" for p in s["prompts"]],
    ]
    replace_block(path, DOC_BEGIN, DOC_END, lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
