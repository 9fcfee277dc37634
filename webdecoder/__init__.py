"""nic's decoder: stdlib + NumPy only, identical in CPython and in Pyodide.

    >>> import webdecoder
    >>> rgb = webdecoder.decode(open("photo.nic", "rb").read())   # (H, W, 3) uint8

Every malformed input raises :class:`NicError`.
"""

from webdecoder.decoder import decode, decode_preview, info, preview_bytes
from webdecoder.errors import NicError
from webdecoder.model import register_model

__all__ = ["decode", "decode_preview", "info", "preview_bytes", "NicError", "register_model"]
__version__ = "0.1.0"
