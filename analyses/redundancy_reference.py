"""Redundancy of the reference model (and, with --gpt2, of GPT-2 small).

Runs interp.redundancy end to end: importance of every attention layer, MLP and block,
the loss increase of dropping each alone and whether the importance ranking predicts it
(Spearman), and drop curves (loss, task metrics, real speed-up) for the four strategies
under both schedules. Writes JSON + a self-contained HTML report and regenerates the
results section of docs/redundancy.md from the measured numbers.

    python analyses/redundancy_reference.py                 # reference model (needs its weights)
    python analyses/redundancy_reference.py --gpt2 --gpt2-data FILE.txt   # GPT-2 small, when its weights exist
"""

from __future__ import annotations

import argparse
import datetime
import logging
import platform
import re
import sys
from pathlib import Path

import torch

from interp.redundancy import KINDS, METRICS, Module, RedundancyConfig, RedundancyResult, importance, load_tokens, run

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "redundancy.md"


def _machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU only, torch threads: {torch.get_num_threads()}"
    return f"{platform.processor() or platform.machine()}, {device}, torch {torch.__version__}"


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _f(x, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def results_markdown(report: RedundancyResult, extra: dict, command: str, html_name: str) -> str:
    imp = report.importance
    n = report.n_layers
    lines = [
        f"Measured {datetime.date.today().isoformat()} with `{command}` on {_machine()} "
        "(2 CPU cores shared with other jobs, no GPU in this session; timings are noisy).",
        f"{report.n_calibration_tokens} calibration tokens (BOS counted), {report.n_heldout_tokens} held-out predicted "
        f"tokens. Baseline held-out loss **{report.baseline_loss:.4f}** (perplexity {2.718281828 ** report.baseline_loss:.3f}). "
        f"Interactive plots: [{html_name}]({html_name}).",
        "",
        "**Most redundant first** (residual metric): "
        + "; ".join(f"{k}: {', '.join(str(m) for m in imp.ranking((k,)))}" for k in KINDS)
        + f"; joint: {', '.join(str(m) for m in imp.ranking(('attn', 'mlp')))}.",
        "",
        *findings(report),
        "",
        "Importance per layer (1 − cos; *output* = the variant on the module's own output):",
        "",
        _row(["layer"] + [f"{k}" for k in KINDS] + [f"{k} output" for k in KINDS]),
        _row(["---"] * 7),
    ]
    for layer in range(n):
        lines.append(_row([str(layer)] + [_f(imp.score(Module(k, layer), m)) for m in METRICS for k in KINDS]))
    if "no_bos" in extra:
        nb = extra["no_bos"]
        lines += ["", f"Without BOS ({nb['n_tokens']} tokens) the residual importance is: "
                  + "; ".join(f"{k} " + ", ".join(_f(v) for v in nb[k]) for k in KINDS)
                  + ". Ranking with BOS left out: " + ", ".join(nb["joint_ranking"]) + "."]
    lines += ["", "Dropping one module alone (held-out loss increase) against its importance:", "",
              _row(["module", "importance", "loss increase"]), _row(["---"] * 3)]
    for k in KINDS:
        for layer in range(n):
            m = Module(k, layer)
            lines.append(_row([str(m), _f(imp.score(m, report.metric)), _f(report.loss_increase(m))]))
    lines += ["", "Spearman rank correlation between importance and the single-drop loss increase "
              f"({n} modules per kind, {2 * n} for joint; with so few points only |ρ| near 1 means much):", "",
              _row(["group", "residual metric", "output metric"]), _row(["---"] * 3)]
    for group, values in report.rank_correlation.items():
        lines.append(_row([group, _f(values["residual"], 3), _f(values["output"], 3)]))
    task_names = sorted({t for c in report.curves for p in c.points if p.tasks for t in p.tasks})
    lines += ["", "Drop curves (k = modules dropped; speed-up = fastest forward time intact / with the modules really "
              "skipped; max |Δlogit| compares the skipping forward with zero-ablation):", ""]
    header = ["strategy", "schedule", "k", "dropped", "loss", "speed-up", "max abs dlogit"] + task_names
    lines += [_row(header), _row(["---"] * len(header))]
    for c in report.curves:
        for p in c.points:
            lines.append(_row([c.strategy, c.schedule, str(p.n_dropped), ", ".join(p.dropped) or "–", _f(p.loss),
                               _f(p.speedup, 2), "–" if p.skip_max_abs_diff is None else f"{p.skip_max_abs_diff:.1e}"]
                              + [_f(p.tasks[t], 3) if p.tasks else "–" for t in task_names]))
    return "\n".join(lines)


def findings(report: RedundancyResult) -> list[str]:
    """Headline findings, computed from the report (bullets)."""
    imp = report.importance
    joint = imp.ranking(("attn", "mlp"))
    first, last = joint[0], joint[-1]
    rho = report.rank_correlation
    lines = [
        f"- Most redundant module: **{first}** (importance {imp.score(first):.4f}); dropping it alone raises the "
        f"held-out loss by {report.loss_increase(first):+.4f}. Least redundant: **{last}** "
        f"({imp.score(last):.4f}, {report.loss_increase(last):+.4f}).",
        f"- Does the cosine ranking predict the loss increase? Spearman ρ (residual metric): attn {rho['attn']['residual']:+.3f}, "
        f"mlp {rho['mlp']['residual']:+.3f}, block {rho['block']['residual']:+.3f}, joint {rho['joint']['residual']:+.3f}; "
        f"output variant: joint {rho['joint']['output']:+.3f}.",
    ]
    agree = [s for s in dict.fromkeys(c.strategy for c in report.curves)
             if len({tuple(c.order) for c in report.curves if c.strategy == s}) == 1]
    differ = [s for s in dict.fromkeys(c.strategy for c in report.curves) if s not in agree]
    lines.append(f"- Iterative and one-shot drop orders agree for: {', '.join(agree) or 'none'}"
                 + (f"; differ for: {', '.join(differ)}." if differ else "."))
    for c in report.curves:
        if c.schedule != "one-shot":
            continue
        half = c.points[len(c.order) // 2]
        tasks = f", facts_top1 {half.tasks['facts_top1']:.3f}, induction_repeat_acc {half.tasks['induction_repeat_acc']:.3f}" \
            if half.tasks and "facts_top1" in half.tasks else ""
        lines.append(f"- {c.strategy}, half dropped ({', '.join(half.dropped)}): loss {half.loss:.4f} "
                     f"({half.loss - report.baseline_loss:+.4f}), speed-up {_f(half.speedup, 2)}×{tasks}.")
    return lines


def write_section(marker: str, text: str) -> None:
    """Replace the block between <!-- {marker}:start --> and <!-- {marker}:end --> in docs/redundancy.md."""
    doc = DOC.read_text(encoding="utf-8")
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start not in doc or end not in doc:
        raise SystemExit(f"{DOC} lacks the markers {start} ... {end}")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    from interp.io import atomic_write_text

    atomic_write_text(DOC, pattern.sub(lambda _: f"{start}\n{text}\n{end}", doc))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpt2", action="store_true", help="analyse GPT-2 small instead (needs its weights)")
    parser.add_argument("--gpt2-data", default="NeelNanda/pile-10k", help="text for GPT-2: .txt/.jsonl paths or a HF dataset")
    parser.add_argument("--n-calibration", type=int, default=64)
    parser.add_argument("--n-heldout", type=int, default=64)
    parser.add_argument("--n-task-prompts", type=int, default=256)
    parser.add_argument("--timing-repeats", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 avoids oversubscription on a shared machine; timings use it)")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/redundancy.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    command = "python analyses/redundancy_reference.py" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")
    name = "gpt2" if args.gpt2 else "reference"
    out = ROOT / "docs" / f"redundancy_{name}"
    cfg = RedundancyConfig(
        model=name, data=args.gpt2_data if args.gpt2 else "reference", n_calibration=args.n_calibration,
        n_heldout=args.n_heldout, batch_size=8 if args.gpt2 else 16, n_task_prompts=args.n_task_prompts,
        timing_batch=8, timing_repeats=args.timing_repeats, device="cpu", out=str(out),
        schedules=["one-shot"] if args.gpt2 else ["one-shot", "iterative"],
        max_drop=12 if args.gpt2 else None, tasks=not args.gpt2,
    )
    report = run(cfg)
    report.write(out)
    print(report.summary())
    extra = {}
    if not args.gpt2:
        from interp.models import load_model

        model = load_model("reference", device="cpu")
        calibration = load_tokens(model, cfg.data, cfg.ctx_len, cfg.n_calibration, cfg.seed)
        no_bos = importance(model, calibration, batch_size=cfg.batch_size, include_bos=False)
        extra["no_bos"] = {k: getattr(no_bos, k) for k in KINDS} | {
            "n_tokens": no_bos.n_tokens, "joint_ranking": [str(m) for m in no_bos.ranking(("attn", "mlp"))]}
        no_bos.save(out / "no_bos_importance.json")
    if not args.no_docs:
        write_section(f"results-{name}", results_markdown(report, extra, command, f"redundancy_{name}/redundancy.html"))
    print(f"wrote {out}/redundancy.json, {out}/redundancy.html" + ("" if args.no_docs else f" and {DOC}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
