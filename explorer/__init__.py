"""posembed-explorer: load any transformer's position embeddings, analyse them, explore them in HTML.

The Python API mirrors the command line::

    import explorer
    emb = explorer.load("sinusoidal,positions=2048")
    result = explorer.analyze(emb)
    explorer.report([emb], "sinusoid.html")

Attributes are imported on first use, so ``import explorer`` (and ``posembed --help``)
stays light: numpy, torch, transformers and bokeh load only when needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"
#: The plugin API version: what docs/plugins.md ("API version") promises not to break within ``0.2.*``.
API_VERSION = "0.2"

from explorer.errors import PosembedError
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.provider import Param, Provider
from explorer.plugins.units import Analysis, Results, Section, SectionContext

_LAZY = {
    "TableContext": "explorer.analysis.context",
    "PositionEmbedding": "explorer.core.embedding",
    "RowAxis": "explorer.core.embedding",
    "RelativePositionTerm": "explorer.core.relative",
    "WindowBias": "explorer.core.window",
    "ConvKernel": "explorer.core.conv",
    "load": "explorer.api",
    "analyze": "explorer.api",
    "report": "explorer.api",
    "show": "explorer.api",
    "check_shape": "explorer.runtime.limits",
    "block_bounds": "explorer.analysis.resample",
    "block_sums": "explorer.analysis.resample",
    "read_config": "explorer.loaders.checkpoints",
    "read_tensor": "explorer.api",
    "StoredTensor": "explorer.api",
    "open_model": "explorer.api",
    "ModelTensors": "explorer.loaders.model_tensors",
    "AttentionInputs": "explorer.core.attention",
    "Norm": "explorer.core.attention",
}

__all__ = ["API_VERSION", "Analysis", "Param", "PosembedError", "Provider", "Results", "Section", "SectionContext",
           "__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
