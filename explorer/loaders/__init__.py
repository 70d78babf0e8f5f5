"""Reading position tables out of model files: safetensors by the byte, checkpoints, the hub, model families.

Used only by the providers (``explorer/providers/``); nothing else in the package imports from here.
"""
