"""Model checkpoints as a list of tensor names plus "read this one tensor", locally or (see hub.py) remotely.

Local folders in the Hugging Face layout: ``config.json`` and ``model.safetensors``, a sharded
``model.safetensors.index.json``, or (the one case that loads whole files) pickled
``pytorch_model.bin`` checkpoints, opened with ``torch.load(weights_only=True, mmap=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import ProviderError
from explorer.loaders import safetensors_io as st
from explorer.loaders.regular_files import read_regular, require_regular
from explorer.runtime.limits import check_shape

CONFIG_FILE = "config.json"
BIN_FILE = "pytorch_model.bin"
BIN_INDEX_FILE = "pytorch_model.bin.index.json"
MAX_CONFIG_BYTES = 10_000_000
#: How many wrappers (``{"state_dict": {"model": ...}}``) are looked through for the tensors.
MAX_WRAPPERS = 8


class Checkpoint:
    """A model's config and tensors: names are listed without reading data; one tensor is read on demand."""

    source: str = ""
    revision: str | None = None
    config: dict[str, Any]
    config_dir: Path | None = None
    """A local folder holding this model's ``config.json`` (for the transformers structure fallback)."""

    def names(self) -> list[str]:
        """Every tensor name in the checkpoint."""
        raise NotImplementedError

    def read(self, name: str) -> tuple[np.ndarray, str]:
        """One tensor as float32 plus the dtype it was stored in (``float32``, ``bfloat16``, ...)."""
        raise NotImplementedError


def read_config(path: Path, where: str) -> dict[str, Any]:
    """``config.json`` as a dict, read as plain JSON (no transformers, no torch)."""
    try:
        # Bounded, and only from a regular file: /dev/zero says it is empty and never ends; a FIFO never opens.
        raw = read_regular(path, MAX_CONFIG_BYTES, f"{where}: {CONFIG_FILE}", f"{CONFIG_FILE} (not a model config)")
    except FileNotFoundError:
        raise ProviderError(f"{where}: no {CONFIG_FILE}, so this is not a Hugging Face model folder") from None
    except OSError as exc:
        raise ProviderError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_config(raw, where)


def parse_config(raw: bytes, where: str) -> dict[str, Any]:
    """``config.json``'s bytes as a dict (local or downloaded); a ``model_type`` that is given must be a string: it
    names the family, and every later step looks it up."""
    config = st.json_object(raw, where, CONFIG_FILE)
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        from explorer.runtime.console import excerpt

        raise ProviderError(f"{where}: {CONFIG_FILE}'s model_type is {excerpt(model_type)}, not a string")
    return config


def missing_shard(where: str, index: str, shard: str) -> ProviderError:
    """The one line for an index naming a shard the model does not have (a half-uploaded repository is normal)."""
    return ProviderError(f"{where}: {index} names the shard {shard!r}, which is missing (an upload not finished, "
                         f"or a shard deleted)")


def tensor_shape(tensor: Any) -> tuple[int, ...]:
    """A tensor's shape, or ``()`` for a nested tensor, which has none (so it is never taken for a 2-D table)."""
    return () if getattr(tensor, "is_nested", False) else tuple(tensor.shape)


def torch_to_numpy(tensor: Any, where: str = "the tensor") -> tuple[np.ndarray, str]:
    """A dense torch tensor as float32 numpy (bf16 and fp16 widen exactly) and its dtype name."""
    import torch

    dtype = str(tensor.dtype).removeprefix("torch.")
    # A file may hold any tensor torch can pickle; only a dense one with data in memory is a table.
    if getattr(tensor, "is_nested", False):
        raise ProviderError(f"{where} is a nested tensor (rows of different lengths), not a table")
    if tensor.layout != torch.strided:
        raise ProviderError(f"{where} is a {str(tensor.layout).removeprefix('torch.')} tensor; "
                            f"posembed reads dense tables only")
    if tensor.is_meta:
        raise ProviderError(f"{where} is a meta tensor: it has a shape but no data")
    if not tensor.is_floating_point():
        raise ProviderError(f"{where} has dtype {dtype}, expected a floating-point table")
    check_shape(tuple(tensor.shape), where, what="a tensor")
    return tensor.detach().to(torch.float32).cpu().numpy(), dtype


def load_torch_file(path: Path) -> Any:
    """A pickled PyTorch file loaded safely: ``weights_only=True``, memory-mapped when the format allows."""
    import pickle

    import torch

    try:
        require_regular(path)  # torch.load would wait for ever on a FIFO
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc) and "zip" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy format: no mmap
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProviderError(f"{path}: refused to unpickle anything but tensors (weights_only=True): {first}") from None
    except (OSError, RuntimeError, EOFError) as exc:
        raise ProviderError(f"cannot load {path} with torch: {exc}") from None
    except RecursionError:
        raise ProviderError(f"cannot load {path} with torch: it is nested too deeply") from None
    except Exception as exc:  # torch's unpickler meets hostile bytes: text gives KeyError, others ValueError, ...
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ProviderError(f"cannot load {path} with torch: not a PyTorch file "
                            f"({type(exc).__name__}{': ' + first if first else ''})") from None


def state_dict_of(obj: Any, where: str) -> dict[str, Any]:
    """The ``name -> tensor`` mapping inside a loaded torch file (a state dict, or one wrapped in a dict)."""
    import torch

    outer = obj
    for _ in range(MAX_WRAPPERS):  # a loop, not recursion: a dict may hold itself, or wrappers thousands deep
        if isinstance(obj, torch.Tensor):
            return {"": obj}
        if not isinstance(obj, dict):
            break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
        obj = next((obj[key] for key in ("state_dict", "model", "model_state_dict") if isinstance(obj.get(key), dict)),
                   None)
    raise ProviderError(f"{where}: holds no tensors (got {type(outer).__name__})")


class LocalCheckpoint(Checkpoint):
    """A model folder on disk in the Hugging Face layout."""

    def __init__(self, directory: str | Path, source: str | None = None, revision: str | None = None) -> None:
        self.dir = Path(directory)
        self.source = source or str(directory)
        self.revision = revision
        self.config_dir = self.dir
        self.config = read_config(self.dir / CONFIG_FILE, self.source)
        self._headers: dict[str, st.Header] = {}
        self._weight_map: dict[str, str] | None = None
        self._torch: dict[str, Any] | None = None

    def _layout(self) -> str:
        for name in (st.SINGLE_FILE, st.INDEX_FILE, BIN_FILE, BIN_INDEX_FILE):
            if (self.dir / name).is_file():
                return name
        raise ProviderError(
            f"{self.source}: no weights found ({st.SINGLE_FILE}, {st.INDEX_FILE} or {BIN_FILE})"
        )

    def _header(self, filename: str) -> st.Header:
        if filename not in self._headers:
            self._headers[filename] = st.read_header(self.dir / filename)
        return self._headers[filename]

    def _map(self, index_file: str) -> dict[str, str]:
        if self._weight_map is None:
            path = self.dir / index_file
            try:
                raw = read_regular(path, st.MAX_INDEX_BYTES, str(path), "the index")
            except OSError as exc:
                raise ProviderError(f"cannot read {path}: {exc.strerror or exc}") from None
            self._weight_map = st.parse_index(raw, str(path))
        return self._weight_map

    def names(self) -> list[str]:
        """Every tensor name, from the safetensors header or index (or the loaded .bin)."""
        layout = self._layout()
        if layout == st.SINGLE_FILE:
            return list(self._header(layout).tensors)
        if layout in (st.INDEX_FILE, BIN_INDEX_FILE):
            return list(self._map(layout))
        return list(self._state_dict(BIN_FILE))

    def _state_dict(self, filename: str) -> dict[str, Any]:
        if self._torch is None:
            self._torch = {}
        if filename not in self._torch:
            path = self.dir / filename
            self._torch[filename] = state_dict_of(load_torch_file(path), str(path))
        return self._torch[filename]

    def read(self, name: str) -> tuple[np.ndarray, str]:
        """One tensor, reading only its bytes from a safetensors file."""
        layout = self._layout()
        filename = layout
        if layout in (st.INDEX_FILE, BIN_INDEX_FILE):
            try:
                filename = self._map(layout)[name]
            except KeyError:
                raise ProviderError(f"{self.source}: no tensor {name!r} in {layout}") from None
            if not os.path.lexists(self.dir / filename):
                raise missing_shard(self.source, layout, filename)
        if filename.endswith(".safetensors"):
            info = self._header(filename).get(name, str(self.dir / filename))
            where = f"{self.source}: {name}"
            array = st.decode(st.read_tensor_bytes(self.dir / filename, info), info.dtype, info.shape, where)
            return array, st.DTYPE_NAMES[info.dtype]
        tensors = self._state_dict(filename)
        if name not in tensors:
            raise ProviderError(f"{self.source}: no tensor {name!r} in {filename}")
        return torch_to_numpy(tensors[name], f"{self.source}: {name}")
