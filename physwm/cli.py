"""The ``physwm`` command: wires the package's pieces together, one subcommand per job.

Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_run_<name>(args)``; ``main`` dispatches.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="physwm",
        description="Physics-informed world models: collect CartPole data, fit and compare dynamics models, plan.",
    )
    parser.add_argument("--version", action="version", version=f"physwm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


_COMMANDS: list = []


def command(add):
    """Register a subcommand's ``_add_<name>`` function (keeps the list in one place)."""
    _COMMANDS.append(add)
    return add


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``physwm`` console command; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"physwm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"physwm {args.command}: interrupted", file=sys.stderr)
        return 130


# --- subcommands ------------------------------------------------------------------------------------
# (each section below belongs to one job; keep them small: parse arguments, call the library, print)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
