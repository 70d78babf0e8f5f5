"""Loading one position term: a spec's provider, its parameters checked, and its answer checked.

``load`` is the one door every table comes through (``explorer.load``, the command line, series and spec files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from explorer.errors import PluginError, PosembedError, ProviderError, SpecError
from explorer.loading.spec import Spec, file_hint, parse_spec
from explorer.plugins.registry import Registry, get_registry

if TYPE_CHECKING:
    from explorer.core.embedding import PositionEmbedding

#: What ``posembed report`` shows when given no spec: needs no network.
DEFAULT_SPEC = "sinusoidal"


def load(spec: str | Spec = DEFAULT_SPEC, registry: Registry | None = None, **params: Any) -> PositionEmbedding:
    """Load the table a spec names, e.g. ``load("sinusoidal,dim=512")`` or ``load("hf", model="gpt2")``.

    Keyword arguments are provider parameters and override those in the spec. Only the plugin that registers the
    provider is imported (the process's registry is built once and grows as specs need it). An exception that is
    not a ``PosembedError``, raised inside a plugin's provider, becomes one ``PluginError`` naming the provider and
    its distribution, chained to the original (a built-in provider's keeps its traceback: it is a bug).
    """
    parsed = spec if isinstance(spec, Spec) else parse_spec(spec)
    registry = get_registry() if registry is None else registry
    try:
        provider = registry.get(parsed.name)
    except SpecError as exc:
        hint = "" if parsed.target is not None or parsed.options else file_hint(parsed.name)
        if not hint:
            raise
        raise SpecError(f"{exc}{hint}") from None
    return call_provider(provider, provider.resolve(parsed.target, {**parsed.options, **params}), registry)


def call_provider(provider: Any, kwargs: dict[str, Any], registry: Registry) -> Any:
    """``provider.load(**kwargs)``, its answer checked: the one place a provider runs (``load``, and ``hf:`` handing a
    model to the provider a plugin claims it for). A plugin's exception that is not a ``PosembedError`` (SystemExit
    too) becomes one ``PluginError`` naming the provider and its distribution; a built-in's keeps its traceback."""
    from explorer.core.embedding import PositionEmbedding
    from explorer.core.relative import RelativePositionTerm
    from explorer.core.conv import ConvKernel
    from explorer.core.window import WindowBias

    try:
        result = provider.load(**kwargs)
    except PosembedError:
        raise
    except (Exception, SystemExit) as exc:
        if registry.is_builtin(provider.name):
            raise
        message = " ".join(str(exc).split())
        raise PluginError(f"provider {provider.name!r} ({registry.origin(provider.name)}) failed: "
                          f"{type(exc).__name__}{': ' + message if message else ''}") from exc
    if not isinstance(result, (PositionEmbedding, RelativePositionTerm, WindowBias, ConvKernel)):
        raise ProviderError(
            f"provider {provider.name!r} returned {type(result).__name__}, not a PositionEmbedding, a "
            f"RelativePositionTerm, a WindowBias or a ConvKernel"
        )
    return result
