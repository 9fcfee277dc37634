"""nic's encoder (PyTorch): analysis, stochastic Gumbel annealing, entropy coding, export.

    >>> from encoder import encode
    >>> data = encode(PIL.Image.open("photo.png"), quality=4, depth=2, effort="fast")
"""

from encoder.codec import Encoder, encode

QUALITIES = 8

__all__ = ["Encoder", "encode", "QUALITIES"]
