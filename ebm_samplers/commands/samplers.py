"""`ebm-samplers samplers`: list the registry with each sampler's default parameters."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    listing = commands.add_parser("samplers", help="list the registered samplers")
    listing.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    import ebm_samplers
    from ebm_samplers.registry import required_parameters

    for name in ebm_samplers.available_samplers():
        required = required_parameters(name)
        described = f"(needs {', '.join(required)})" if required else ebm_samplers.get_sampler(name).params()
        print(f"{name:24s} {described}")
    return 0
