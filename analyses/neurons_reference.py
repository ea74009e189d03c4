"""Neurons and activation sparsity of the reference model.

1. Decode every MLP neuron (write side and read side) through the final norm and W_U.
2. Count the neurons whose top 3 decoded tokens all fall in one semantic class of the
   reference vocabulary (colours, animals, names, numbers, places, jobs, subjects, FSM
   states, two-digit years), against the same count for a randomly initialised model of
   the same shape.
3. Clamp the strongest neuron of each class on reference-corpus prompts and compare the
   change in its decoded tokens' log-probability with 20 random neurons of its layer.
4. Fine-tune a copy on one part of the corpus (prose only) for about two minutes (the
   copy is never saved) and measure, per layer, the fraction of neurons whose top token
   is unchanged.
5. Sparsity: densities per layer, top-k thresholding curve, CoreInfer core-set similarity.

Writes runs/analyses/neurons_reference/{results.json, decode.html, clamp.html,
sparsity.html, neurons.safetensors}, copies results.json to docs/neurons_reference.json,
and regenerates the results sections of docs/neurons.md and docs/sparsity.md.

    python analyses/neurons_reference.py [--finetune-seconds 120]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import re
import time
from pathlib import Path

import torch

from interp.data import token_batches
from interp.io import atomic_write_text
from interp.models import load_model
from interp.neurons import DecodeResult, clamp_test, classify, compare, decode, semantic_classes
from interp.neurons.html import clamp_page
from interp.sparsity import core_similarity, measure, related_sentences, topk_curve
from interp.sparsity.html import sparsity_page

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "analyses" / "neurons_reference"
COMMAND = "python analyses/neurons_reference.py"


def finetune(model, seconds: float, seed: int = 0, lr: float = 1e-3, max_steps: int = 400):
    """A copy of ``model`` trained on the prose family only, for at most ``seconds``."""
    tuned = copy.deepcopy(model)
    tuned.train()
    from interp.data import batched, pack, reference_documents

    docs = reference_documents(model.tokenizer, seed=seed + 7, mixture={"prose": 1.0})
    batches = batched(pack(docs, 64, model.tokenizer.bos_token_id), 16)
    optimizer = torch.optim.AdamW(tuned.parameters(), lr=lr, weight_decay=0.0)
    start, steps, losses = time.time(), 0, []
    for tokens in batches:
        if time.time() - start > seconds or steps >= max_steps:
            break
        loss = tuned(tokens, return_type="loss")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        steps += 1
    tuned.eval()
    return tuned, {"steps": steps, "seconds": round(time.time() - start, 1), "first_loss": losses[0], "last_loss": losses[-1]}


def random_model(model):
    from interp.reference.model import architecture, build

    fresh = build(architecture(model.cfg.d_vocab), model.tokenizer, seed=0)
    fresh.eval()
    return fresh


def replace_section(doc: Path, name: str, text: str) -> None:
    content = doc.read_text()
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(content):
        raise SystemExit(f"{doc} has no <!-- {name}:start/end --> markers")
    atomic_write_text(doc, pattern.sub(lambda m: m.group(1) + text.rstrip() + "\n" + m.group(2), content))


def neurons_markdown(res: dict) -> str:
    lines = [
        f"Measured {res['date']} with `{COMMAND}` on {res['machine']} (2 shared CPU cores, no GPU in this session).",
        f"{res['n_neurons']} neurons (4 layers x 512). A neuron counts for a class when its **top 3** decoded "
        "write-side tokens are all in that class; the control is a randomly initialised model of the same shape.",
        "",
        "| class | neurons (write side) | read side | expected by chance | random-init model | strongest (write side) | its top tokens | clamp: delta log-prob of top 3 | random neurons (mean) | beats random | p(top token) before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cls, count in res["classes_out"]["counts"].items():
        clamp = res["clamps"].get(cls)
        chance = res["chance"][cls]
        if clamp is None:
            lines.append(f"| {cls} | {count} | {res['classes_in']['counts'][cls]} | {chance:.1f} | {res['classes_random']['counts'][cls]} | – | – | – | – | – | – |")
            continue
        rnd = sum(clamp["random_delta"]) / len(clamp["random_delta"])
        tokens = " ".join(f"`{t.replace(chr(9601), ' ').strip()}`" for t in clamp["targets"])
        lines.append(
            f"| {cls} | {count} | {res['classes_in']['counts'][cls]} | {chance:.1f} | {res['classes_random']['counts'][cls]} | "
            f"L{clamp['layer']}N{clamp['neuron']} | {tokens} | {clamp['mean_delta']:+.3f} | {rnd:+.3f} | "
            f"{clamp['percentile']:.0%} | {clamp['baseline_prob']:.2e} -> {clamp['clamped_prob']:.2e} |"
        )
    ft = res["finetune"]
    above = [c for c, n in res["classes_out"]["counts"].items() if n > 2 * res["chance"][c] and n > 2 * res["classes_random"]["counts"][c]]
    lines += [
        "",
        "'Expected by chance' is the count if each neuron's top 3 were 3 distinct tokens drawn uniformly from the "
        f"{res['vocab_size']}-token vocabulary: n_neurons x C(|class|, 3) / C(V, 3). The random-init model is the "
        "reference architecture initialised from seed 0. Classes with more than twice both controls: "
        f"**{', '.join(above) or 'none'}**; the others are not above chance by this count, although their strongest "
        "neuron can still pass the clamp test.",
        "",
        f"Clamp value: twice the layer's largest activation on {res['clamp_prompts']} reference prompts of 64 tokens; "
        "delta log-prob is the change of the mean log-probability of the neuron's top 3 decoded tokens over all "
        "positions; 'beats random' is the fraction of 20 random neurons of the same layer, clamped to the same "
        "value, whose effect on the same tokens is smaller.",
        "",
        f"**Model comparison.** A copy fine-tuned on the prose family only ({ft['steps']} AdamW steps in {ft['seconds']} s, "
        f"lr 1e-3, loss {ft['first_loss']:.3f} -> {ft['last_loss']:.3f}; weights not kept):",
        "",
        "The last column compares the trained model with the random-init model. That model is the reference model's own "
        "initialisation (both seed 0), which is why it is above the 1/V chance level.",
        "",
        "| layer | top-1 token unchanged | top-10 overlap | vs random-init model: unchanged |",
        "|---|---|---|---|",
    ]
    for i, layer in enumerate(res["comparison"]["layers"]):
        lines.append(f"| {layer} | {res['comparison']['unchanged'][i]:.3f} | {res['comparison']['overlap'][i]:.3f} | "
                     f"{res['comparison_random']['unchanged'][i]:.3f} |")
    return "\n".join(lines)


def sparsity_markdown(res: dict) -> str:
    sp, curve, core = res["sparsity"], res["topk"], res["core"]
    lines = [
        f"Measured {res['date']} with `{COMMAND}` on {res['machine']} (2 shared CPU cores, no GPU).",
        f"{sp['layers'][0]['n_tokens']} tokens of the reference corpus (BOS positions left out), threshold "
        f"{sp['threshold']}, DEFT eps {sp['deft_eps']}, dense = positive on more than {sp['dense_frequency']:.0%} of tokens.",
        "",
        "| layer | exact nonzero | positive pre-act. | > threshold | DEFT density | dead | dense | positive neurons / token |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in sp["layers"]:
        total = sum(s["token_counts"])
        mean = sum(c * n for c, n in enumerate(s["token_counts"])) / total
        lines.append(f"| {s['layer']} | {s['nonzero']:.4f} | {s['positive']:.4f} | {s['above']:.4f} | {s['deft']:.4f} | "
                     f"{s['dead']} | {s['dense']} | {mean:.1f} |")
    lines += ["", f"**Top-k thresholding** (every layer keeps each token's k largest activations; "
              f"{curve['n_tokens']} predicted tokens, baseline loss {curve['baseline_loss']:.4f}):", "",
              "| k | k / d_mlp | loss | increase |", "|---|---|---|---|"]
    for k, loss, inc in zip(curve["ks"], curve["losses"], curve["increase"]):
        lines.append(f"| {k} | {k / curve['d_mlp']:.4f} | {loss:.4f} | {inc:+.4f} |")
    lines += ["", f"**CoreInfer core neurons** (alpha {core['alpha']}, beta {core['beta']}; {core['n_sentences']} sentences "
              f"from {core['n_groups']} prose templates, related = same template):", "",
              "| layer | core size | Jaccard, related | Jaccard, unrelated |", "|---|---|---|---|"]
    for i, layer in enumerate(core["layers"]):
        lines.append(f"| {layer} | {core['core_size'][i]:.1f} | {core['related'][i]:.3f} | {core['unrelated'][i]:.3f} |")
    return "\n".join(lines)


def chance_counts(vocab: list[str], classes: dict, n_neurons: int, top: int = 3) -> dict[str, float]:
    """Expected class counts if each neuron's top tokens were distinct uniform draws from the vocabulary."""
    from math import comb

    size = len(vocab)
    present = set(vocab)
    return {c: n_neurons * comb(len(set(words) & present), top) / comb(size, top) for c, words in classes.items()}


def write_docs(results: dict) -> None:
    replace_section(ROOT / "docs" / "neurons.md", "results-reference", neurons_markdown(results))
    replace_section(ROOT / "docs" / "sparsity.md", "results-reference", sparsity_markdown(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finetune-seconds", type=float, default=120.0)
    parser.add_argument("--n-prompts", type=int, default=16)
    parser.add_argument("--docs-only", action="store_true",
                        help="regenerate the docs sections from docs/neurons_reference.json without recomputing")
    args = parser.parse_args()
    if args.docs_only:
        write_docs(json.loads((ROOT / "docs" / "neurons_reference.json").read_text()))
        return
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    model = load_model("reference", device="cpu")
    classes = semantic_classes(tokens=True)

    table = decode(model, side="out", k=10)
    table.save(OUT / "neurons.safetensors")
    by_class = classify(table, classes, top=3, exact=True)
    by_class_in = classify(decode(model, side="in", k=10), classes, top=3, exact=True)
    fresh = random_model(model)
    fresh_table = decode(fresh, side="out", k=10)
    by_class_random = classify(fresh_table, classes, top=3, exact=True)

    prompts = next(iter(token_batches("reference", model.tokenizer, ctx_len=64, batch_size=args.n_prompts, seed=1)))
    clamps = {}
    for cls in by_class.counts:
        if by_class.neurons[cls]:
            best = by_class.strongest(cls)
            row = table.row_of(best.layer, best.neuron)
            clamps[cls] = clamp_test(model, best.layer, best.neuron, prompts, table.top_ids[row, :3].tolist(), n_random=20, seed=0)

    tuned, ft = finetune(model, args.finetune_seconds)
    comparison = compare(table, decode(tuned, side="out", k=10))
    comparison_random = compare(table, fresh_table)

    batches = token_batches("reference", model.tokenizer, ctx_len=128, batch_size=16, seed=2)
    sparsity = measure(model, batches, max_batches=8)
    curve = topk_curve(model, next(iter(token_batches("reference", model.tokenizer, ctx_len=128, batch_size=16, seed=3))))
    core = core_similarity(model, related_sentences(n_templates=6, per_template=6, seed=0))

    results = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, CPU only, torch {torch.__version__}",
        "n_neurons": len(table),
        "classes_out": by_class.to_dict(),
        "classes_in": {"counts": by_class_in.counts},
        "classes_random": {"counts": by_class_random.counts},
        "chance": chance_counts(table.vocab, classes, len(table)),
        "vocab_size": len(table.vocab),
        "clamp_prompts": args.n_prompts,
        "clamps": {cls: c.to_dict() for cls, c in clamps.items()},
        "finetune": ft,
        "comparison": comparison.__dict__,
        "comparison_random": comparison_random.__dict__,
        "sparsity": sparsity.to_dict(),
        "topk": {**curve.__dict__, "increase": curve.increase},
        "core": core.__dict__,
    }
    text = json.dumps(results, indent=1) + "\n"
    atomic_write_text(OUT / "results.json", text)
    atomic_write_text(ROOT / "docs" / "neurons_reference.json", text)
    atomic_write_text(OUT / "decode.html", DecodeResult(table, by_class).to_html())
    atomic_write_text(OUT / "clamp.html", clamp_page(list(clamps.values())))
    atomic_write_text(OUT / "sparsity.html", sparsity_page(sparsity, curve, core, table))
    write_docs(results)
    for result in (by_class, *clamps.values(), comparison, sparsity, curve, core):
        print(result.summary())
    print(f"wrote {OUT} and the results sections of docs/neurons.md and docs/sparsity.md")


if __name__ == "__main__":
    main()
