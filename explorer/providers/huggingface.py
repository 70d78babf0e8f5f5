"""The ``hf`` provider (any Hugging Face model id or local folder) and ``gpt2`` (the GPT-2 family).

Both read ``config.json`` as JSON, find the position table by tensor name (``explorer.loaders.families``)
and read only that tensor's bytes (``explorer.loaders.checkpoints`` locally, ``explorer.loaders.hub``
remotely).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from explorer.errors import PosembedWarning, ProviderError, SpecError
from explorer.loaders import video
from explorer.loaders.families import TABLE_CHOICES, TOWER_CHOICES
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.provider import Param, Provider

#: Short names of the GPT-2 family and their hub repositories.
GPT2_MODELS = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    "distilgpt2": "distilbert/distilgpt2",
}
_GPT2_ALIASES = {"small": "gpt2", "medium": "gpt2-medium", "large": "gpt2-large", "xl": "gpt2-xl",
                 "distil": "distilgpt2"}


def open_checkpoint(model: str, revision: str | None = None):
    """A local folder as a LocalCheckpoint, anything else as a hub repository (RemoteCheckpoint)."""
    from explorer.loaders.checkpoints import LocalCheckpoint

    path = Path(model).expanduser()
    if path.is_dir():
        if revision:
            warnings.warn(PosembedWarning(f"revision={revision} applies to hub models; {model} is a local folder "
                                          f"and is read as it is"), stacklevel=2)
        return LocalCheckpoint(path, source=model)
    if path.exists():
        raise ProviderError(f"{model} is a file, not a model folder; use file:{model}")
    if model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1:
        raise ProviderError(f"no such model folder: {model}")
    from explorer.loaders.hub import RemoteCheckpoint

    return RemoteCheckpoint(model, revision)


def local_config(model: str | None) -> dict[str, Any] | None:
    """The ``config.json`` of ``model`` when it is a local folder (read as ``open_checkpoint`` reads it), else None:
    a hub id's config is not fetched to estimate a run (``Provider.expected_shape``)."""
    from explorer.loaders.checkpoints import CONFIG_FILE, read_config

    path = Path(model).expanduser() if model else None
    return read_config(path / CONFIG_FILE, model) if path is not None and path.is_dir() else None


def _expected_shape(model: str | None, tensor: str | None = None, offset: int | None = None,
                    **_: Any) -> tuple[int, int] | None:
    """positions x width from a local folder's ``config.json`` (``families.config_table_shape``); None for a hub id,
    a tensor or offset of the user's choosing, or a config that does not say."""
    from explorer.loaders.families import config_table_shape

    config = local_config(model)
    return None if config is None or tensor or offset is not None else config_table_shape(config)


def _gpt2_expected_shape(model: str, **_: Any) -> tuple[int, int] | None:
    """``_expected_shape`` of the folder ``gpt2`` reads (a short name or hub id: None)."""
    name = _GPT2_ALIASES.get(model, model)
    return _expected_shape(GPT2_MODELS.get(name, name))


def read_table(provider: str, checkpoint: Any, params: dict[str, Any], which: str = "auto",
               tensor: str | None = None, offset: int | None = None, attention: int | None = None,
               tokens: str | None = None):
    """The position table ``which`` of ``checkpoint`` as a PositionEmbedding, offset rows dropped and recorded;
    with ``attention=L``, also what layer L's attention from positions alone needs (``loaders.attention_weights``)."""
    from explorer.core.embedding import PositionEmbedding, RowAxis
    from explorer.loaders import deberta, families

    choice = families.choose(checkpoint, which, tensor)
    matrix, dtype = checkpoint.read(choice.tensor)
    if matrix.ndim == 3 and matrix.shape[0] == 1:  # ViT, DeiT, DINOv2: an nn.Parameter of shape (1, N, D)
        matrix = matrix[0]
    if matrix.ndim != 2:
        raise ProviderError(f"{checkpoint.source}: tensor {choice.tensor!r} has shape {list(matrix.shape)}, "
                            f"not positions x dimensions")
    drop = choice.offset if offset is None else offset
    if drop >= matrix.shape[0]:
        raise ProviderError(f"{checkpoint.source}: cannot drop {drop} offset rows from a table of {matrix.shape[0]}")
    grid, description = choice.grid, choice.description
    if grid is not None:
        patches = grid[0] * grid[1]
        if matrix.shape[0] - drop != patches:
            if offset is not None:  # the user chose other rows: they are a sequence, not the config's grid
                grid = None
            else:
                raise ProviderError(
                    f"{checkpoint.source}: its config gives a {grid[0]} x {grid[1]} patch grid ({patches} patches), "
                    f"but {choice.tensor!r} has {matrix.shape[0]} rows, {matrix.shape[0] - drop} after the "
                    f"{drop} class-token rows; name the rows to drop with offset=N")
        else:
            description += f"; {grid[0]} x {grid[1]} patch grid from image_size / patch_size"
    rows = None
    if choice.kind == "relative" and checkpoint.config.get("model_type") in deberta.MODEL_TYPES:
        try:
            axis = deberta.row_axis(checkpoint.config, matrix.shape[0])
        except ProviderError as exc:  # the table is still the checkpoint's: read it, just without distances
            description += f"; rows not labelled: {exc}"
        else:
            rows = RowAxis(axis.name, axis.labels[drop:], axis.reverse)
            description += "; rows labelled with the key - query distances they serve, from config.json"
    inputs = None
    if attention is not None:
        from explorer.loaders.attention_weights import read_attention

        inputs = read_attention(checkpoint, attention, matrix[drop:].shape, tokens or "zero", choice.tensor)
    elif tokens is not None:
        raise SpecError(f"{provider}: tokens={tokens} applies to the attention; give attention=L too")
    return PositionEmbedding(
        matrix[drop:], provider=provider, source=checkpoint.source, kind=choice.kind, offset=drop, dtype=dtype,
        params=params, tensor=choice.tensor, revision=checkpoint.revision, description=description, grid=grid,
        rows=rows, attention=inputs,
    )


def load_hf(model: str | None, revision: str | None, table: str, tensor: str | None, offset: int | None,
            positions: int | None = None, tower: str = "auto", attention: int | None = None,
            tokens: str | None = None):
    """The ``hf`` provider's ``load``: the model's own table, or the provider a plugin claims its config for."""
    if not model:
        raise ProviderError("hf needs a model: hf:ORG/NAME (a hub id) or hf:PATH (a local folder)")
    if tower != "auto" and table != "auto":
        raise SpecError(f"hf: give table={table} or tower={tower}, not both")
    checkpoint = open_checkpoint(model, revision)
    if tensor is None and offset is None and video.is_video(checkpoint.config):
        return read_video_table(checkpoint, model, revision, table, positions, tower, attention, tokens)
    if tensor is None and offset is None:
        claimed = claimed_provider(checkpoint.config)
        if claimed is not None:
            return delegate(claimed, model, revision, table, positions, attention, tokens)
    if positions is not None:
        raise SpecError(f"hf: positions applies to relative terms and rotary tables; {checkpoint.source} has a "
                        f"table of its own")
    params = {"model": model, "revision": revision, "table": table, "tensor": tensor, "offset": offset,
              "attention": attention, "tokens": tokens}
    if tower != "auto":
        params["tower"] = tower
    which = tower if tower != "auto" else table
    return read_table("hf", checkpoint, {k: v for k, v in params.items() if v is not None}, which, tensor, offset,
                      attention, tokens)


def read_video_table(checkpoint: Any, model: str, revision: str | None, table: str, positions: int | None,
                     tower: str, attention: int | None, tokens: str | None):
    """A VideoMAE, ViViT or TimeSformer model's positions on their frames x rows x columns grid
    (``explorer.loaders.video``); the parameters that mean nothing for them refused in one line."""
    refused = [name for name, value in (("positions", positions), ("attention", attention), ("tokens", tokens))
               if value is not None]
    if tower != "auto":
        refused.append("tower")
    if refused:
        raise SpecError(f"hf: {checkpoint.source} is a video model ({checkpoint.config['model_type']}), which takes "
                        f"no {' or '.join(refused)}")
    params = {k: v for k, v in {"model": model, "revision": revision, "table": table}.items() if v is not None}
    return video.read_video(checkpoint, table, "hf", params)


def claimed_provider(config: dict[str, Any]) -> str | None:
    """The provider a plugin claims ``config`` for (``provider_for_config``): asked for every model type outside
    posembed's table families (an unknown one included), before its structure is searched for a table."""
    from explorer.loaders import families
    from explorer.plugins.registry import get_registry

    if config.get("model_type") in families.FAMILIES:
        return None
    return get_registry().provider_for_config(config)


def delegate(name: str, model: str, revision: str | None, table: str, positions: int | None,
             attention: int | None = None, tokens: str | None = None):
    """Load ``model`` with the provider ``name`` (claimed through ``provider_for_config``), passing on the hf
    parameters it has."""
    from explorer.plugins.registry import get_registry

    provider = get_registry().get(name)
    accepted = {p.name for p in provider.params}
    options = {"revision": revision, "positions": positions, "attention": attention, "tokens": tokens,
               **({"table": table} if table != "auto" else {})}
    refused = sorted(k for k, v in options.items() if v is not None and k not in accepted)
    if refused:
        raise SpecError(f"hf: {model} is read by provider {name!r}, which takes no {' or '.join(refused)}")
    from explorer.loading.load import call_provider

    # through the same door as every load: a plugin's own fault is one line naming it (its traceback with --debug)
    return call_provider(provider, provider.resolve(model, {k: v for k, v in options.items() if v is not None}),
                         get_registry())


def load_gpt2(model: str, revision: str | None, attention: int | None = None, tokens: str | None = None):
    """The ``gpt2`` provider's ``load``: a short name, a hub id or a local folder of the GPT-2 family."""
    name = _GPT2_ALIASES.get(model, model)
    checkpoint = open_checkpoint(GPT2_MODELS.get(name, name), revision)
    model_type = checkpoint.config.get("model_type")
    if model_type != "gpt2":
        raise ProviderError(f"{checkpoint.source} is a {model_type or 'model of unknown type'} model, not GPT-2; "
                            f"use hf:{model}")
    params = {"model": model, **{k: v for k, v in (("revision", revision), ("attention", attention),
                                                   ("tokens", tokens)) if v is not None}}
    return read_table("gpt2", checkpoint, params, attention=attention, tokens=tokens)


#: ``attention=L``: also read what layer L's attention from positions alone needs (off by default: more bytes).
ATTENTION = Param("attention", int, None, "also compute layer L's attention from positions alone (reads that "
                  "layer's norm and query/key weights; L > 0 only for a local folder)", minimum=0)
TOKENS = Param("tokens", str, None, "with attention: what stands in for the tokens, zero (default) or mean (the "
               "mean token embedding; reads the token table)", choices=("zero", "mean"))

HF = Provider(
    name="hf",
    description="Any Hugging Face model (hub id or local folder): reads only its position table",
    load=load_hf,
    params=(
        Param("model", str, None, "hub id (ORG/NAME) or local folder with config.json"),
        Param("revision", str, None, "hub branch, tag or commit (default: main)"),
        Param("table", str, "auto", "which of the model's position tables: encoder or decoder of an "
              "encoder-decoder model (auto = its only one, else the encoder's); space or time of TimeSformer (auto = "
              "their sum on the frames x rows x columns grid)", choices=TABLE_CHOICES),
        Param("tensor", str, None, "tensor name, to override the automatic choice"),
        Param("offset", int, None, "rows to drop before position 0 (default: the model family's)", minimum=0),
        Param("positions", int, None, "for a model without a table (T5, ALiBi, RoPE): the positions L its "
              "relative term or rotary table covers", minimum=1),
        Param("tower", str, "auto", "which tower of a CLIP or SigLIP model: vision (its patch grid; auto) or text",
              choices=TOWER_CHOICES),
        ATTENTION, TOKENS,
    ),
    target="model",
    expected_shape=_expected_shape,
)

GPT2 = Provider(
    name="gpt2",
    description="GPT-2's learned table: gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2 or a local folder",
    load=load_gpt2,
    params=(
        Param("model", str, "gpt2", "short name, hub id or local folder (network on first use only)"),
        Param("revision", str, None, "hub branch, tag or commit (default: main)"),
        ATTENTION, TOKENS,
    ),
    target="model",
    expected_shape=_gpt2_expected_shape,
)


@hookimpl
def register_providers(register) -> None:
    """Register the ``gpt2`` and ``hf`` providers."""
    register(GPT2)
    register(HF)
