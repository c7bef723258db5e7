"""The sampler registry: built-in and user kernels are registered and looked up the same way."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # the kernels import this module to register themselves
    from ebm_samplers.kernels.base import Kernel

_REGISTRY: dict[str, Callable[..., Kernel]] = {}

K = TypeVar("K", bound=Callable[..., "Kernel"])


def register_sampler(name: str, *, overwrite: bool = False) -> Callable[[K], K]:
    """Class decorator: make a kernel class (or factory) available as `get_sampler(name, **params)`.

    Registering a name twice raises unless `overwrite=True`, so a typo cannot silently replace a
    built-in sampler.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"sampler name must be a Python identifier such as 'my_mala'; got {name!r}")

    def decorator(factory: K) -> K:
        if not callable(factory):
            raise TypeError(f"register_sampler({name!r}) needs a kernel class or factory; got {factory!r}")
        if name in _REGISTRY and not overwrite and _REGISTRY[name] is not factory:
            raise ValueError(f"a sampler named {name!r} is already registered; pass overwrite=True to replace it")
        _REGISTRY[name] = factory
        if isinstance(factory, type):
            factory.name = name
        return factory

    return decorator


def get_sampler(name: str, **params) -> Kernel:
    """A new kernel of the registered sampler `name`, built with `params`."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), available_samplers(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown sampler {name!r}{hint}; available samplers: {', '.join(available_samplers())}")
    factory = _REGISTRY[name]
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some callables have no introspectable signature
        signature = None
    if signature is not None:
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        unknown = sorted(set(params) - set(signature.parameters))
        if unknown and not accepts_any:
            raise TypeError(
                f"sampler {name!r} has no parameter(s) {', '.join(unknown)}; "
                f"its parameters are: {', '.join(signature.parameters) or '(none)'}"
            )
    kernel = factory(**params)
    # the contract, checked without importing the kernels (they import this module to register themselves)
    if not (callable(getattr(kernel, "init", None)) and callable(getattr(kernel, "step", None))):
        raise TypeError(f"sampler {name!r} built a {type(kernel).__name__}; expected an ebm_samplers Kernel")
    return kernel


def required_parameters(name: str) -> list[str]:
    """The parameters sampler `name` has no default for (data_jump: its `reference` points); [] if it has none."""
    try:
        signature = inspect.signature(_REGISTRY[name])
    except (TypeError, ValueError):
        return []
    keyword_like = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in signature.parameters.values() if p.kind in keyword_like and p.default is p.empty]


def available_samplers() -> list[str]:
    """Names of all registered samplers, sorted."""
    return sorted(_REGISTRY)
