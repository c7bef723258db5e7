"""Resolving the inner kernel of a composite sampler (parallel tempering, persistent chains)."""

from __future__ import annotations

from ebm_samplers.kernels.base import Kernel
from ebm_samplers.registry import get_sampler


def resolve_inner(owner: str, inner: str | Kernel, inner_params: dict) -> Kernel:
    """The kernel `owner` runs inside: a registered name built with `inner_params`, or a kernel object
    (then `inner_params` must be empty, since they would silently not apply)."""
    if isinstance(inner, str):
        if inner == owner:
            raise ValueError(f"{owner} cannot use itself as the inner kernel")
        return get_sampler(inner, **inner_params)
    if isinstance(inner, Kernel):
        if inner_params:
            raise TypeError(
                f"inner parameters {sorted(inner_params)} were given with an inner kernel object; "
                "set them on the kernel or pass the inner sampler by name"
            )
        return inner
    raise TypeError(f"{owner} inner must be a registered sampler name or a Kernel; got {inner!r}")
