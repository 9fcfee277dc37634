"""Pillow plugin: ``import webdecoder.pillow`` and ``PIL.Image.open("photo.nic")`` works.

Registers a read-only image format "NIC" recognised by its magic bytes and the ``.nic``
extension, so every tool built on Pillow can open .nic files. This is the one module
of ``webdecoder`` that imports Pillow; the decoder itself never does.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from webdecoder.decoder import decode, info
from webdecoder.format import MAGIC


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == MAGIC


class NicImageFile(ImageFile.ImageFile):
    format = "NIC"
    format_description = "nic neural image codec"

    def _open(self) -> None:
        self._data = self.fp.read()
        meta = info(self._data)  # validates header, CRC and model before anything else
        self._size = (meta["width"], meta["height"])
        self._mode = "RGB"
        self.info.update({k: meta[k] for k in ("quality", "depth", "kmac_per_px", "model_id")})
        self.tile = []

    def load(self):
        if self._im is None:
            rgb = decode(self._data)
            self.im = Image.frombytes("RGB", self.size, rgb.tobytes()).im
        return Image.Image.load(self)


Image.register_open(NicImageFile.format, NicImageFile, _accept)
Image.register_extension(NicImageFile.format, ".nic")
Image.register_mime(NicImageFile.format, "image/x-nic")
