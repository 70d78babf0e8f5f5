"""``ModelTensors``: a model's config and its tensors, read one at a time (public as ``explorer.open_model``).

It wraps the ``Checkpoint`` the ``hf`` provider reads its table from (``explorer.loaders.checkpoints`` for a local
folder, ``explorer.loaders.hub`` for a hub repository), so a tensor read through it has every limit and check a
table read has: a safetensors header validated against the file's size, only the tensor's bytes read (one HTTP
range on the hub, at most ``POSEMBED_MAX_DOWNLOAD_MB``, cached at its exact size), BF16/F16 decoded exactly,
pickled ``.bin`` files loaded with ``weights_only=True``. ``attention=L`` reads its layer's weights through it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import ProviderError
from explorer.loaders.checkpoints import Checkpoint, LocalCheckpoint
from explorer.loaders.families import find_tensor

#: Module names that hold a model's numbered layers (``model.layers.3.``, ``encoder.layer.3.``, GPT-2's ``h.3.``).
LAYER_LISTS = ("layers", "layer", "h", "blocks", "block")


class ModelTensors:
    """A model's ``config.json`` (as a dict) and its tensors by name, each read on demand and only its bytes.

    ``read`` returns float32 (bf16 and fp16 widened exactly) and the stored dtype; ``tensor`` finds a name by
    suffix and may check the shape. Every name read is kept in ``read_names``, in order (for provenance).
    """

    def __init__(self, checkpoint: Checkpoint, purpose: str = "") -> None:
        self.checkpoint, self.purpose = checkpoint, purpose
        self.read_names: list[str] = []
        self._names: list[str] | None = None

    @property
    def config(self) -> dict[str, Any]:
        """``config.json`` as a dict (plain JSON, no transformers)."""
        return self.checkpoint.config

    @property
    def source(self) -> str:
        """The model as the user named it (hub id or folder)."""
        return self.checkpoint.source

    @property
    def revision(self) -> str | None:
        """The hub revision asked for (None: main, or a local folder)."""
        return self.checkpoint.revision

    @property
    def folder(self) -> Path | None:
        """The model's local folder; None for a hub repository."""
        return self.checkpoint.dir if isinstance(self.checkpoint, LocalCheckpoint) else None

    def names(self, layer: int | None = None) -> list[str]:
        """Every tensor name (no data read); with ``layer``, those of layer ``layer`` only (a name with
        ``.layers.L.``, ``.layer.L.``, ``h.L.`` or ``.blocks.L.`` in it)."""
        if self._names is None:
            self._names = list(self.checkpoint.names())
        if layer is None:
            return list(self._names)
        lists = "|".join(LAYER_LISTS)
        pattern = re.compile(rf"(^|\.)({lists})\.{int(layer)}\.")
        return [name for name in self._names if pattern.search(name)]

    def find(self, suffix: str) -> str | None:
        """The tensor named ``suffix``, or the shortest name ending in ``"." + suffix``; None if there is none."""
        return find_tensor(self.names(), suffix)

    def read(self, name: str) -> tuple[np.ndarray, str]:
        """Tensor ``name`` as float32 and the dtype it was stored in (``float32``, ``bfloat16``, ...)."""
        array, dtype = self.checkpoint.read(name)
        self.read_names.append(name)
        return array, dtype

    def tensor(self, suffix: str, shape: tuple[int, ...] | None = None, required: bool = True) -> np.ndarray | None:
        """The tensor ``find(suffix)`` names, as float32; None when there is none and not ``required``.

        A missing required tensor, or one whose shape is not ``shape``, is one ``ProviderError`` (naming
        what the reader was opened for: ``purpose``, e.g. "for the attention")."""
        name = self.find(suffix)
        why = f", needed {self.purpose}" if self.purpose else ""
        if name is None:
            if required:
                raise ProviderError(f"{self.source}: no tensor ending in {suffix!r}{why}")
            return None
        array, _ = self.read(name)
        if shape is not None and tuple(array.shape) != tuple(shape):
            raise ProviderError(f"{self.source}: {name!r} has shape {list(array.shape)}, expected {list(shape)}{why}")
        return array
