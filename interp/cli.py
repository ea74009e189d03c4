"""The ``interp`` command line: a thin shell over the Python API.

The parser is built from the registry in :mod:`interp.commands` (each capability's
``commands.py`` registers its subcommands there). Every flag has a kebab-case and a
snake_case spelling (``--node-threshold`` / ``--node_threshold``). Errors a user can cause
are :class:`~interp.errors.InterpError`\\ s, printed as one line ``interp: error: ...`` with
exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from simple_parsing import ArgumentParser, DashVariant

from interp.commands import COMMANDS, GROUP_HELP, command, load_all

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


# --- interp info -------------------------------------------------------------------


@dataclass
class InfoConfig:
    """Show a model's architecture and hook points."""

    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2'), or a local checkpoint directory."""
    json: bool = False
    """Print JSON instead of a table."""


@command("info", help="a model's architecture and hook points", config=InfoConfig)
def _info(cfg: InfoConfig) -> int:
    from interp.models import load_model, model_info

    info = model_info(load_model(cfg.model, device="cpu"))
    print(json.dumps(asdict(info), indent=2) if cfg.json else info.describe())
    return 0


# --- parser ------------------------------------------------------------------------


class _Parser(ArgumentParser):
    """simple_parsing's parser whose unknown-flag error names the subcommand and the closest flag."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _field_names(config: type) -> set[str]:
    """Every field name of a config dataclass, nested configs included."""
    import dataclasses

    names: set[str] = set()
    for f in dataclasses.fields(config):
        names.add(f.name)
        if isinstance(f.type, type) and dataclasses.is_dataclass(f.type):
            names |= _field_names(f.type)
        elif isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):  # type: ignore[misc]
            names |= _field_names(f.default_factory)
    return names


def _global_overwrite(config: type) -> bool:
    """Whether a subcommand takes the global ``--overwrite``: it writes results into ``--out``
    through :func:`interp.commands.finish` (its config has ``out`` but no ``overwrite`` of its own)."""
    fields = _field_names(config)
    return "out" in fields and "overwrite" not in fields


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool, config: type | None = None) -> None:
    """``-v``, ``--debug`` and ``--threads``, accepted before the subcommand and after it
    (a subcommand whose config has a field of the same name keeps its own); and, after a
    subcommand that writes into ``--out``, ``--overwrite`` (the commands that write their
    directory as they go, such as ``cache run`` and ``transcoder train``, have their own)."""
    fields = _field_names(config) if config is not None else set()
    taken = {f"--{name}" for name in fields}

    def add(*flags: str, default, **kwargs) -> None:
        if not taken.intersection(flags):
            parser.add_argument(*flags, default=default if defaults else argparse.SUPPRESS, **kwargs)

    add("-v", "--verbose", default=False, action="store_true", help="log at INFO level")
    add("--debug", default=False, action="store_true", help="show the full traceback of an error instead of one line")
    add("--threads", default=None, type=int, metavar="N",
        help="CPU threads torch may use (default: torch's choice, one per core). On a machine other jobs "
        "share, --threads 1 avoids oversubscription, which can slow a run down several times over")
    if config is not None and _global_overwrite(config):
        from simple_parsing.utils import str2bool

        add("--overwrite", default=False, type=str2bool, nargs="?", const=True, metavar="BOOL",
            help="replace the results an earlier run wrote into --out (without it they are kept and the command is refused)")


def build_parser() -> argparse.ArgumentParser:
    """The ``interp`` parser, built from the command registry."""
    load_all()
    parser = _Parser(
        prog="interp",
        description="Mechanistic interpretability of transformer MLPs and attention.",
        add_option_string_dash_variants=DashVariant.UNDERSCORE_AND_DASH,
    )
    _add_global_options(parser, defaults=True)
    root = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {(): root}
    for path, cmd in sorted(COMMANDS.items()):
        for depth in range(1, len(path)):
            if path[:depth] not in groups:
                group = groups[path[: depth - 1]].add_parser(
                    path[depth - 1],
                    help=GROUP_HELP.get(" ".join(path[:depth]), ""),
                    add_option_string_dash_variants=DashVariant.UNDERSCORE_AND_DASH,
                )
                groups[path[:depth]] = group.add_subparsers(
                    dest=f"command_{depth}", metavar="COMMAND", required=True, parser_class=_Parser
                )
        leaf = groups[path[:-1]].add_parser(
            path[-1],
            help=cmd.help,
            description=cmd.config.__doc__,
            add_option_string_dash_variants=DashVariant.UNDERSCORE_AND_DASH,
        )
        leaf.add_arguments(cmd.config, dest="cfg")
        _add_global_options(leaf, defaults=False, config=cmd.config)
        leaf.set_defaults(_command=cmd, _leaf=leaf)
    return parser


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings if s.startswith("--")]


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    from interp.errors import InterpError

    try:
        args, extras = parser.parse_known_args(argv)
    except (InterpError, ValueError) as err:  # a config's own check of its settings
        if "--debug" in (argv if argv is not None else sys.argv[1:]):
            raise
        parser.exit(EXIT_USAGE, f"interp: error: {_one_line(err)}\n")
    if extras:
        leaf = getattr(args, "_leaf", parser)
        unknown = next((e for e in extras if e.startswith("-")), extras[0])
        flag = unknown.split("=", 1)[0]
        close = difflib.get_close_matches(flag, _options(leaf), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else f"; `{leaf.prog} --help` lists the options"
        what = "option" if flag.startswith("-") else "argument"
        leaf.error(f"unknown {what} {unknown!r}{hint}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    return run_command(args._command, args.cfg, debug=args.debug, overwrite=getattr(args, "overwrite", False))


def run_command(cmd, cfg, *, debug: bool = False, overwrite: bool = False) -> int:
    """Run one parsed subcommand, turning errors into one line and an exit code. ``overwrite``
    is the global ``--overwrite`` (:func:`interp.commands.finish` reads it)."""
    from interp.commands import check_out, running
    from interp.errors import InterpError

    try:
        with running(cmd.path, overwrite=overwrite):
            _check_out(cfg)
            if _global_overwrite(cmd.config):
                check_out(getattr(cfg, "out", None))
            return int(cmd.run(cfg) or 0)
    except KeyboardInterrupt:
        print("interp: interrupted; files already written are intact", file=sys.stderr)
        return EXIT_INTERRUPTED
    except InterpError as err:
        if debug:
            raise
        print(f"interp: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        if debug:
            raise
        where = f": {err.filename}" if getattr(err, "filename", None) else ""
        print(f"interp: error: {err.strerror or err}{where}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 - the last resort: one line, the traceback with --debug
        if debug:
            raise
        print(
            f"interp: internal error: {type(err).__name__}: {_one_line(err)} "
            "(this is a bug in interp; rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _check_out(cfg) -> None:
    """Refuse an ``--out`` that cannot become a directory before the command does any work: an
    existing file, a path below a file, or one below a directory this user cannot write to."""
    import os
    from pathlib import Path

    from interp.errors import ConfigError

    out = getattr(cfg, "out", None)
    if not isinstance(out, (str, Path)):
        return
    out = Path(out).expanduser()
    if out.is_dir():
        return
    if out.exists():
        raise ConfigError(f"--out {out} is an existing file; every command writes a directory there: choose a new or empty directory")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"--out {out} cannot be created: {parent} is a file, not a directory")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out} cannot be created: {parent} is not writable by this user; choose another --out")


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
