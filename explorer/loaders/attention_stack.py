"""The stream entering layer L > 0 from positions alone, made by running the layers below with torch.

Only a local checkpoint: the whole model is loaded (``from_pretrained``, safetensors or ``weights_only``) and run
once on the positions alone, exactly as ``attention=0`` defines them for the family (``attention_weights``):
text models through their own forward with ``inputs_embeds`` (zeros, or the mean token) and
``output_hidden_states``; grid models (ViT, DeiT, DINOv2) through their own layers on the patch position rows
and CLIP and SigLIP's vision towers, through their own layers on the patch position rows (their forward takes
pixels, and the class token is left out, as at layer 0); BART's and mBART's encoder through its own forward.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.errors import ProviderError
from explorer.loaders.checkpoints import Checkpoint

#: Families whose layers take the patch positions directly (no class token, no mask).
GRID_TYPES = {"vit", "vit_msn", "deit", "dinov2", "clip", "clip_vision_model", "siglip", "siglip_vision_model"}


def stream_below(checkpoint: Checkpoint, layer: int, mean_token: np.ndarray | None, positions: int) -> np.ndarray:
    """The ``positions`` x D stream entering ``layer`` (float32) for ``checkpoint``'s own positions and tokens."""
    try:
        import torch
        from transformers import AutoConfig, AutoModel
    except ImportError as exc:  # pragma: no cover - torch and transformers are dependencies
        raise ProviderError(f"attention={layer} runs the layers below with torch: {exc}") from None
    from transformers.utils import logging

    folder = str(checkpoint.config_dir)
    bar, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()  # posembed's stderr carries its own lines only (and --json's stdout stays JSON)
    logging.set_verbosity_error()
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        model = AutoModel.from_pretrained(folder, config=config, trust_remote_code=False,
                                          attn_implementation="eager").eval()
    except Exception as exc:  # transformers raises many kinds for a folder it cannot load
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ProviderError(f"{checkpoint.source}: cannot load the model to run its layers below {layer}: "
                            f"{first}") from None
    finally:
        logging.set_verbosity(verbosity)
        if bar:
            logging.enable_progress_bar()
    with torch.no_grad():
        if checkpoint.config.get("model_type") in GRID_TYPES:
            return _grid_stream(model, layer, mean_token, checkpoint.source)
        if checkpoint.config.get("is_encoder_decoder"):  # BART, mBART: the encoder's own stream
            return _text_stream(model.get_encoder(), layer, mean_token, positions)
        return _text_stream(model, layer, mean_token, positions)


def _text_stream(model: Any, layer: int, mean_token: np.ndarray | None, positions: int) -> np.ndarray:
    import torch

    width = model.get_input_embeddings().weight.shape[1]
    embeds = torch.zeros(1, positions, width)
    if mean_token is not None:
        embeds += torch.from_numpy(np.asarray(mean_token, dtype=np.float32))
    out = model(inputs_embeds=embeds, output_hidden_states=True)
    return out.hidden_states[layer][0].numpy().astype(np.float32)


def _grid_stream(model: Any, layer: int, mean_token: np.ndarray | None, source: str) -> np.ndarray:
    import torch

    tower = getattr(model, "vision_model", model)  # CLIP and SigLIP keep their vision tower apart
    embeddings = tower.embeddings
    if hasattr(embeddings, "position_embeddings"):  # ViT, DeiT, DINOv2: a (1, N, D) parameter
        table = embeddings.position_embeddings.detach()[0]
    else:  # CLIP, SigLIP: an nn.Embedding
        table = embeddings.position_embedding.weight.detach()
    patches = getattr(embeddings, "num_patches", None) or embeddings.patch_embeddings.num_patches
    x = table[table.shape[0] - patches:][None].clone()
    if mean_token is not None:
        x += torch.from_numpy(np.asarray(mean_token, dtype=np.float32))
    if hasattr(tower, "pre_layrnorm"):  # CLIP's norm right after the embeddings
        x = tower.pre_layrnorm(x)
    stack = _layer_list(tower, layer, source)
    for block in stack[:layer]:
        x = block(x, None)  # no attention mask
        x = x[0] if isinstance(x, tuple) else x
    return x[0].numpy().astype(np.float32)


def _layer_list(model: Any, layer: int, source: str) -> Any:
    """The model's list of transformer layers (``layers`` or ``encoder.layer``, by transformers version)."""
    import torch

    count = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise ProviderError(f"{source}: cannot find the model's {count} layers to run those below layer {layer}")
