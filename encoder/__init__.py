"""nic's encoder (PyTorch): analysis, stochastic Gumbel annealing, entropy coding, export.

    >>> from encoder import encode
    >>> data = encode(PIL.Image.open("photo.png"), quality=4, depth=2, effort="fast")

Torch is imported on first use only, so ``nic decode`` / ``nic info`` start fast.
"""

import warnings

# CompressAI calls torch.jit.script at import time, which recent torch flags as deprecated.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

QUALITIES = 8
__all__ = ["Encoder", "encode", "QUALITIES"]


def __getattr__(name: str):
    if name in ("Encoder", "encode"):
        from encoder import codec

        return getattr(codec, name)
    raise AttributeError(name)
