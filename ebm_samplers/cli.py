"""The `ebm-samplers` command line.

    ebm-samplers sample [--energy mixture|gaussian2d|module:callable] [--sampler mala] [--out DIR] ...
    ebm-samplers samplers

User mistakes (unknown names, bad numbers, an energy that breaks the contract) end with one
`error: ...` line on stderr and exit status 2; `--traceback` shows the full Python traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ebm_samplers.commands import COMMANDS

_USER_ERRORS = (ValueError, TypeError, KeyError, LookupError, OSError, ImportError, FloatingPointError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except BrokenPipeError:
        # the reader went away (`ebm-samplers samplers | head`): nothing is wrong with the command, and Python's
        # flush of stdout at exit would fail again, so that flush goes to /dev/null (as Python's docs advise)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except _USER_ERRORS as error:
        if args.traceback:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ebm-samplers", description=__doc__.splitlines()[0])
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    for command in COMMANDS:
        command.add_parser(commands)
    return parser
