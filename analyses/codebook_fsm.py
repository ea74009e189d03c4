"""Codebook features on the reference model's finite-state-machine traces.

Reproduces the FSM experiment of Tamkin, Taufeeque & Goodman (2023), scaled to the
reference model: one k = 1 codebook at the MLP output of one layer, with a codebook
several times the number of FSM states (24), initialised by k-means and trained with the
model frozen on the reference corpus (all five task families, so the bottleneck must serve
the whole corpus). Then:

1. for every FSM state S, the code that best predicts "this token is state S in an FSM
   trace" (by F1) and its precision and recall, against the best single MLP neuron of
   the original model at the same layer thresholded to the same recall;
2. steering: on traces that end in a state T, force S's code at the last position and
   measure the Jensen-Shannon divergence (bits) of the next-token distribution to the
   uniform distribution over S's legal successors, before and after, and the
   probability mass on S's successors;
3. the LM-loss cost of the bottleneck against the original model on held-out corpus
   batches.

Writes analyses/out/codebook_fsm/{result.json, report.html, report.json} and the
results section of docs/codebooks.md. Run:

    python analyses/codebook_fsm.py            # reference weights
    python analyses/codebook_fsm.py --random-init --steps 2 --kmeans-tokens 2048 --no-docs   # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "analyses" / "out" / "codebook_fsm"
DOCS = ROOT / "docs" / "codebooks.md"
BEGIN, END = "<!-- codebook_fsm:begin -->", "<!-- codebook_fsm:end -->"

TARGET_FRACTION = 0.8
TARGET_PRECISION = 0.9
TARGET_RECALL = 0.5
TARGET_COST = 0.10


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layer", type=int, default=3, help="MLP whose output gets the codebook")
    p.add_argument("--n-codes", type=int, default=192, help="codes (8 x the 24 FSM states)")
    p.add_argument("--steps", type=int, default=60, help="codebook training steps (model frozen)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the codes")
    p.add_argument("--kmeans-tokens", type=int, default=24576, help="activation vectors for k-means")
    p.add_argument("--n-contexts", type=int, default=128, help="held-out contexts for code search")
    p.add_argument("--prompts-per-state", type=int, default=6, help="steering prompts per target state")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-init", action="store_true", help="use a random-init model (smoke test)")
    p.add_argument("--no-docs", action="store_true", help="do not update docs/codebooks.md")
    return p.parse_args()


def model_spec(random_init: bool, tmp: Path) -> str:
    if not random_init:
        return "reference"
    from interp.reference.model import save_untrained

    return str(save_untrained(tmp))


def state_search(model, books, original, layer: int, data, world) -> list[dict]:
    from interp.codebooks.search import best_neuron_at_recall, collect_activations, collect_codes, match_property
    from interp.codebooks.search import property_mask
    from interp.reference import vocab as V

    record = collect_codes(model, books, data.tokens)
    hook = books.hooks[0]
    neurons = collect_activations(original, data.tokens, f"blocks.{layer}.mlp.hook_post").flatten(0, 1)
    in_trace = property_mask(data.tokens, labels=data.labels, label="fsm_state")
    vocab = model.tokenizer.get_vocab()
    rows = []
    for state in V.FSM_STATES:
        mask = in_trace & (data.tokens == vocab[V.SPACE + state])
        if not mask.any():
            raise SystemExit(f"state {state} never occurs in the {len(data.tokens)} contexts; raise --n-contexts")
        best = match_property(record, hook, mask, top=1)[0]
        neuron = best_neuron_at_recall(neurons, mask.flatten(), max(best.recall, 1e-6))
        rows.append(
            {
                "state": state,
                "positions": int(mask.sum()),
                "code": best.code,
                "precision": best.precision,
                "recall": best.recall,
                "f1": best.f1,
                "code_fired": best.fired,
                "neuron": neuron.neuron,
                "neuron_precision": neuron.precision,
                "neuron_recall": neuron.recall,
                "good": best.precision >= TARGET_PRECISION and best.recall >= TARGET_RECALL,
            }
        )
    return rows, record


def steering(model, books, rows: list[dict], world, n_prompts: int, seed: int) -> dict:
    from interp.codebooks.steer import next_token_shift
    from interp.reference import vocab as V

    rng = random.Random(seed)
    vocab = model.tokenizer.get_vocab()
    hook = books.hooks[0]
    bos = model.tokenizer.bos_token_id
    prefix = [vocab[V.SPACE + "trace"], vocab[":"]]
    per_state = []
    for row in rows:
        target_state = row["state"]
        succ = [vocab[V.SPACE + s] for s in world.fsm[target_state]]
        target = torch.zeros(model.cfg.d_vocab)
        target[succ] = 1.0 / len(succ)
        prompts = []
        for _ in range(n_prompts):
            # a walk ending in a state T whose successors are not S's
            while True:
                state = rng.choice(V.FSM_STATES)
                walk = [state]
                for _ in range(rng.randint(3, 10)):
                    walk.append(rng.choice(world.fsm[walk[-1]]))
                if walk[-1] != target_state:
                    break
            prompts.append([bos, *prefix, *[vocab[V.SPACE + s] for s in walk]])
        js_b, js_a, mass_b, mass_a = [], [], [], []
        for p in prompts:  # prompts differ in length; run one at a time (cheap at this size)
            shift = next_token_shift(model, books, torch.tensor([p]), {hook: [row["code"]]}, positions="last", target=target)
            js_b.append(float(shift.js_before_target[0]))
            js_a.append(float(shift.js_after_target[0]))
            mass_b.append(float(shift.before[0, succ].sum()))
            mass_a.append(float(shift.after[0, succ].sum()))
        n = len(prompts)
        per_state.append(
            {
                "state": target_state,
                "code": row["code"],
                "js_before": sum(js_b) / n,
                "js_after": sum(js_a) / n,
                "successor_mass_before": sum(mass_b) / n,
                "successor_mass_after": sum(mass_a) / n,
            }
        )
    mean = {k: sum(r[k] for r in per_state) / len(per_state) for k in per_state[0] if k not in ("state", "code")}
    moved = sum(r["js_after"] < r["js_before"] for r in per_state)
    return {"per_state": per_state, "mean": mean, "states_moved_toward_successors": moved}


def figures_html(rows: list[dict], steer: dict) -> str:
    import plotly.graph_objects as go

    states = [r["state"] for r in rows]
    pr = go.Figure(
        [
            go.Bar(name="code precision", x=states, y=[r["precision"] for r in rows]),
            go.Bar(name="code recall", x=states, y=[r["recall"] for r in rows]),
            go.Bar(name="best neuron precision at the same recall", x=states, y=[r["neuron_precision"] for r in rows]),
        ]
    )
    pr.update_layout(barmode="group", title="Best code per FSM state", yaxis_range=[0, 1.05], height=380)
    st = go.Figure(
        [
            go.Bar(name="JS to successors, before", x=states, y=[r["js_before"] for r in steer["per_state"]]),
            go.Bar(name="JS to successors, after forcing", x=states, y=[r["js_after"] for r in steer["per_state"]]),
        ]
    )
    st.update_layout(barmode="group", title="Steering: forcing state S's code", yaxis_title="bits", height=380)
    return pr.to_html(full_html=False, include_plotlyjs=False) + st.to_html(full_html=False, include_plotlyjs=False)


def docs_section(result: dict) -> str:
    r = result
    lines = [
        BEGIN,
        f"Produced by `python analyses/codebook_fsm.py` on {r['date']} ({r['machine']}); "
        f"model `{r['model']}`, codebook at `{r['hook']}`, {r['n_codes']} codes, k = 1, "
        f"k-means initialisation on FSM-rich activations, then {r['steps']} codebook training steps (model frozen) "
        f"of batch {r['batch_size']} x 128 tokens of the default corpus ({r['train_seconds']:.0f} s).",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| states with a code of precision >= 0.9 and recall >= 0.5 | {r['good_states']}/24 "
        f"({100 * r['good_fraction']:.0f}%) | >= 80% |",
        f"| mean best-code precision / recall | {r['mean_precision']:.3f} / {r['mean_recall']:.3f} | |",
        f"| mean best-neuron precision at the same recall | {r['mean_neuron_precision']:.3f} | |",
        f"| JS(next token, uniform over S's successors), before -> after forcing S's code | "
        f"{r['steering']['mean']['js_before']:.3f} -> {r['steering']['mean']['js_after']:.3f} bits | decreases |",
        f"| probability on S's successors, before -> after | {r['steering']['mean']['successor_mass_before']:.3f} -> "
        f"{r['steering']['mean']['successor_mass_after']:.3f} | |",
        f"| states whose distribution moved toward S's successors | {r['steering']['states_moved_toward_successors']}/24 | |",
        f"| LM loss after k-means only (before training) | {r['loss_kmeans_only']:.4f} | |",
        f"| LM loss, original -> with codebook | {r['loss_original']:.4f} -> {r['loss_codebooks']:.4f} "
        f"({100 * r['relative_cost']:+.1f}%) | <= +10% |",
        f"| perplexity, original -> with codebook | {r['perplexity_original']:.3f} -> {r['perplexity_codebooks']:.3f} | |",
        f"| active codes on held-out batches | {r['active_codes']}/{r['n_codes']} | |",
        "",
        "Per state (best code by F1; neuron = best single MLP neuron of the original model at the same recall):",
        "",
        "| state | code | precision | recall | neuron precision | JS before | JS after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, st in zip(r["states"], r["steering"]["per_state"]):
        lines.append(
            f"| {row['state']} | {row['code']} | {row['precision']:.3f} | {row['recall']:.3f} | "
            f"{row['neuron_precision']:.3f} | {st['js_before']:.3f} | {st['js_after']:.3f} |"
        )
    lines.append(END)
    return "\n".join(lines)


def update_docs(section: str) -> None:
    from interp.io import atomic_write_text

    text = DOCS.read_text() if DOCS.is_file() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    atomic_write_text(DOCS, text)


KMEANS_MIXTURE = {"greater_than": 0.25, "facts": 0.125, "induction": 0.2, "fsm": 0.3, "prose": 0.15}
"""Documents for the k-means initialisation: FSM traces raised from 10% to about 30% of
documents (relative weights), so that k-means, which spends codes where the activation mass
is, does not merge the rarest states (a few occurrences per 10k tokens); training and every
evaluation use the default mixture."""


def train_codebook(args, spec: str):
    """k-means init on FSM-rich activations, then train the codes (model frozen) on the corpus."""
    from itertools import islice

    from interp.codebooks import Codebooks
    from interp.codebooks.training import kmeans_init, lm_loss, train_codebooks
    from interp.data import batched, pack, reference_documents, token_batches
    from interp.models import load_model

    torch.manual_seed(args.seed)
    model = load_model(spec, device="cpu")
    for p in model.parameters():
        p.requires_grad_(False)
    tok = model.tokenizer
    held_out = list(islice(token_batches("reference", tok, 128, args.batch_size, seed=args.seed + 10_000), 8))
    loss_original, _ = lm_loss(model, held_out)
    books = Codebooks.create(model, ["mlp_out"], [args.layer], n_codes=args.n_codes, k=1)
    kmeans_docs = reference_documents(tok, seed=args.seed + 20_000, mixture=KMEANS_MIXTURE)
    kmeans_init(model, books, batched(pack(kmeans_docs, 128, tok.bos_token_id), 16), args.kmeans_tokens, args.seed)
    loss_kmeans, _ = lm_loss(model, held_out, books)
    optimizer = torch.optim.Adam(books.parameters(), lr=args.lr)
    t0 = time.time()
    train_codebooks(
        model, books, token_batches("reference", tok, 128, args.batch_size, seed=args.seed), optimizer, args.steps,
        codebook_loss_coef=1.0, replace_dead_every=None,
    )
    seconds = time.time() - t0
    loss_codebooks, active = lm_loss(model, held_out, books)
    books.save(OUT / "run", extra={"model": spec, "fine_tuned": False})
    return model, books, {
        "loss_original": loss_original,
        "loss_kmeans_only": loss_kmeans,
        "loss_codebooks": loss_codebooks,
        "relative_cost": (loss_codebooks - loss_original) / loss_original,
        "perplexity_original": math.exp(loss_original),
        "perplexity_codebooks": math.exp(loss_codebooks),
        "active_codes": active[books.hooks[0]],
        "train_seconds": seconds,
    }


def main() -> int:
    args = parse()
    torch.set_num_threads(2)
    from interp.codebooks.search import labelled_contexts
    from interp.codebooks.summary import summarize_codes
    from interp.reference.corpus import World

    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        spec = model_spec(args.random_init, Path(tmp))
        model, books, cost = train_codebook(args, spec)
        print(f"LM loss {cost['loss_original']:.4f} -> {cost['loss_codebooks']:.4f} ({100 * cost['relative_cost']:+.1f}%)",
              flush=True)
    original = model  # frozen: the codebook run never changed the weights
    world = World.from_seed()
    data = labelled_contexts(model.tokenizer, args.n_contexts, 128, seed=args.seed + 1)
    rows, record = state_search(model, books, original, args.layer, data, world)
    steer = steering(model, books, rows, world, args.prompts_per_state, args.seed)
    good = sum(r["good"] for r in rows)
    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": "2-core shared CPU, no GPU",
        "model": "reference" if not args.random_init else "random-init (smoke run)",
        "hook": books.hooks[0],
        "layer": args.layer,
        "n_codes": args.n_codes,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "train_seconds": cost["train_seconds"],
        "good_states": good,
        "good_fraction": good / len(rows),
        "mean_precision": sum(r["precision"] for r in rows) / len(rows),
        "mean_recall": sum(r["recall"] for r in rows) / len(rows),
        "mean_neuron_precision": sum(r["neuron_precision"] for r in rows) / len(rows),
        **{k: v for k, v in cost.items() if k != "train_seconds"},
        "states": rows,
        "steering": steer,
        "passed": {
            "states": good / len(rows) >= TARGET_FRACTION,
            "steering": steer["mean"]["js_after"] < steer["mean"]["js_before"],
            "cost": cost["relative_cost"] <= TARGET_COST,
        },
        "seconds": time.time() - t0,
    }
    from interp.io import atomic_write_text

    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT / "result.json", json.dumps(result, indent=2) + "\n")
    codes = summarize_codes(model, books, record, title="Codebook at the reference model's MLP: FSM states", top_codes=60,
                            extra={k: v for k, v in result.items() if k not in ("states", "steering")})
    codes.save(OUT / "report.json")
    page = codes.to_html()
    page = page.replace("</body>", figures_html(rows, steer) + "</body>", 1)
    atomic_write_text(OUT / "report.html", page)
    if not args.no_docs:
        update_docs(docs_section(result))
    print(json.dumps({k: result[k] for k in ("good_states", "mean_precision", "mean_recall", "relative_cost", "passed")}))
    print(f"steering JS {steer['mean']['js_before']:.3f} -> {steer['mean']['js_after']:.3f} bits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
