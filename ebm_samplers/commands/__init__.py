"""One module per command-line subcommand; each has `add_parser(subparsers)` and `run_command(args) -> int`.

To add a command, write a module here and list it in `COMMANDS`; `ebm_samplers.cli` needs no change.
"""

from ebm_samplers.commands import diagnose, sample, samplers, train

COMMANDS = [sample, samplers, diagnose, train]
