"""Tiny random transformers models for the attention and model-tensor tests (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

#: transformers' own attention in plain torch, whose output_attentions are the probabilities.
EAGER = {"attn_implementation": "eager"}


def randomised(model):
    """Every parameter drawn N(0, 0.5): LayerNorms and biases far from their defaults, so a skipped one shows."""
    import torch

    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    return model.eval()


def padded_on_the_hub(hub, st_tools, folder, model, repo):
    """``model`` saved under ``folder``/small, then published on the fake ``hub`` as ``repo`` with 64 MB of zeros (a
    hole on disk) before and after its tensors; returns its tensors by name and the published folder."""
    from safetensors.numpy import load_file

    model.save_pretrained(folder / "small")
    tensors = load_file(folder / "small" / "model.safetensors")
    published = folder / "padded"
    published.mkdir()
    (published / "config.json").write_bytes((folder / "small" / "config.json").read_bytes())
    padded = {"a.filler": ("F32", (4096, 4096)), **tensors, "z.filler": ("F32", (4096, 4096))}
    st_tools.write(published / "model.safetensors", padded, {"format": "pt"})
    hub.add(repo, published)
    return tensors, published
