"""The ``interp`` command line: a thin shell over the Python API.

Every subcommand is one :class:`Command`: a config dataclass (its field docstrings are
the ``--help`` text, read by simple_parsing) and a ``run(cfg)`` that calls the public
function a notebook would call and prints its result. Subcommands register themselves
in ``COMMANDS`` with :func:`command`; the parser is built from that registry.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from simple_parsing import ArgumentParser, DashVariant

from interp.reference.train import ReferenceTrainConfig


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    help: str
    config: type
    run: Callable


COMMANDS: dict[tuple[str, ...], Command] = {}
GROUP_HELP: dict[str, str] = {
    "reference": "train and evaluate the offline reference model",
    "neurons": "decode MLP neurons through the unembedding and verify them by clamping",
    "circuit": "attribution graphs through transcoders: trace, export, report",
    "codebook": "codebook bottlenecks: train, search and report discrete codes",
    "cache": "cache activations of hook points to disk and inspect stores",
    "transcoder": "train transcoders that imitate MLP layers, and evaluate them spliced in",
}
COMMAND_MODULES: tuple[str, ...] = ("interp.transcoders.commands", "interp.codebooks.commands", "interp.cache.commands", "interp.redundancy.commands", "interp.neurons.commands", "interp.sparsity.commands", "interp.circuits.commands", "interp.units.commands")
"""Modules that register more subcommands with :func:`command` when imported
(one per capability, e.g. ``interp.cache.commands``); imported when the parser is built."""


def command(*path: str, help: str, config: type) -> Callable:
    """Register ``run(cfg)`` as the subcommand ``interp <path...>``."""

    def register(run: Callable) -> Callable:
        COMMANDS[path] = Command(path, help, config, run)
        return run

    return register


# --- interp info -------------------------------------------------------------------


@dataclass
class InfoConfig:
    """Show a model's architecture and hook points."""

    model: str = "reference"
    """'reference', 'gpt2', or a local checkpoint directory."""
    json: bool = False
    """Print JSON instead of a table."""


@command("info", help="a model's architecture and hook points", config=InfoConfig)
def _info(cfg: InfoConfig) -> None:
    from interp.models import load_model, model_info

    info = model_info(load_model(cfg.model, device="cpu"))
    print(json.dumps(asdict(info), indent=2) if cfg.json else info.describe())


# --- interp reference --------------------------------------------------------------


@dataclass
class ReferenceEvalConfig:
    """Measure the reference model's task metrics on held-out prompts."""

    model: str = "reference"
    """'reference' (the bundled weights) or a directory written by `interp reference train`."""
    n_prompts: int = 512
    """Prompts per task."""
    out: str | None = None
    """Also write the metrics to this JSON file."""


@command("reference", "eval", help="print each task metric of the reference model", config=ReferenceEvalConfig)
def _reference_eval(cfg: ReferenceEvalConfig) -> int:
    from interp.io import atomic_write_text
    from interp.models import load_model
    from interp.reference.tasks import evaluate

    metrics = evaluate(load_model(cfg.model, device="cpu"), n_prompts=cfg.n_prompts)
    print(metrics.table())
    if cfg.out:
        atomic_write_text(cfg.out, json.dumps({"metrics": metrics.to_dict(), "passed": metrics.passed()}, indent=2) + "\n")
    return 0 if metrics.all_passed() else 1


def _reference_train(cfg) -> int:
    from interp.reference.train import train

    result = train(cfg)
    print(f"wrote {result.out} in {result.seconds:.0f} s (final loss {result.final_loss:.4f})")
    for name, ok in result.passed.items():
        print(f"  {name:28s} {result.metrics[name]:.4f}  {'ok' if ok else 'BELOW TARGET'}")
    return 0 if all(result.passed.values()) else 1


command("reference", "train", help="train the reference model from its seed", config=ReferenceTrainConfig)(
    _reference_train
)


# --- parser ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``interp`` parser, built from ``COMMANDS``."""
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = ArgumentParser(
        prog="interp",
        description="Mechanistic interpretability of transformer MLPs and attention.",
        add_option_string_dash_variants=DashVariant.DASH,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="CPU threads torch may use (default: torch's choice, one per core). On a machine other jobs "
        "share, --threads 1 avoids oversubscription, which can slow a run down several times over",
    )
    root = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=ArgumentParser)
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {(): root}
    for path, cmd in sorted(COMMANDS.items()):
        for depth in range(1, len(path)):
            if path[:depth] not in groups:
                group = groups[path[: depth - 1]].add_parser(
                    path[depth - 1],
                    help=GROUP_HELP.get(" ".join(path[:depth]), ""),
                    add_option_string_dash_variants=DashVariant.DASH,
                )
                groups[path[:depth]] = group.add_subparsers(
                    dest=f"command_{depth}", metavar="COMMAND", required=True, parser_class=ArgumentParser
                )
        leaf = groups[path[:-1]].add_parser(
            path[-1],
            help=cmd.help,
            description=cmd.config.__doc__,
            add_option_string_dash_variants=DashVariant.DASH,
        )
        leaf.add_arguments(cmd.config, dest="cfg")
        leaf.set_defaults(_command=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from interp.errors import InterpError

    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    try:
        code = args._command.run(args.cfg)
    except InterpError as err:
        print(f"interp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interp: interrupted; files already written are intact", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
