"""Resolving a sampler given by registered name or as a kernel object: `sample()`'s sampler and the inner
kernel of a composite sampler (parallel tempering, persistent chains)."""

from __future__ import annotations

from ebm_samplers.kernels.base import Kernel
from ebm_samplers.registry import get_sampler


def resolve_kernel(sampler: str | Kernel, params: dict, *, owner: str | None = None) -> Kernel:
    """A registered name built with `params`, or a kernel object (then `params` must be empty, since they would
    silently not apply). `owner`: the composite sampler this kernel runs inside, if any (it cannot be itself)."""
    role = "sampler" if owner is None else "inner"
    if isinstance(sampler, str):
        if sampler == owner:
            raise ValueError(f"{owner} cannot use itself as the inner kernel")
        kernel = get_sampler(sampler, **params)
        if not isinstance(kernel, Kernel):
            raise TypeError(f"sampler {sampler!r} built a {type(kernel).__name__}; expected an ebm_samplers Kernel")
        return kernel
    if isinstance(sampler, Kernel):
        if params:
            kernel_object = "a kernel object" if owner is None else "an inner kernel object"
            raise TypeError(
                f"{role} parameters {sorted(params)} were given with {kernel_object}; set them on the kernel "
                f"or pass the {'sampler' if owner is None else 'inner sampler'} by name"
            )
        return sampler
    what = "sampler" if owner is None else f"{owner} inner"
    raise TypeError(f"{what} must be a registered sampler name or a Kernel object; got {type(sampler).__name__}")
