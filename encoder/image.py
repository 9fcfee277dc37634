"""Any input image -> (H, W, 3) uint8 RGB, with the conversions documented in the README.

EXIF orientation is applied; grayscale, palette, CMYK and 16-bit images are
converted to 8-bit RGB; alpha is composited onto white (``.nic`` has no alpha).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from webdecoder.format import MAX_DIM, MAX_PIXELS


class ImageError(ValueError):
    """An input image cannot be encoded (unreadable, empty, too large)."""


def to_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ImageError(f"array of shape {arr.shape} is not HxW, HxWx3 or HxWx4")
        if arr.dtype == np.uint16:
            arr = (arr.astype(np.uint32) * 255 + 32767) // 65535
        elif arr.dtype != np.uint8:
            raise ImageError(f"array dtype {arr.dtype} is not uint8 or uint16")
        if arr.shape[2] == 4:
            a = arr[:, :, 3:4].astype(np.float32) / 255
            arr = np.round(arr[:, :, :3] * a + 255 * (1 - a))
        arr = np.ascontiguousarray(arr.astype(np.uint8))
    else:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            a16 = np.asarray(image, dtype=np.uint32)
            arr = to_rgb(np.clip((a16 * 255 + 32767) // 65535, 0, 255).astype(np.uint8))
        elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            arr = to_rgb(np.asarray(image.convert("RGBA")))
        else:
            arr = np.asarray(image.convert("RGB"))
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        raise ImageError("image has zero width or height")
    if h > MAX_DIM or w > MAX_DIM or h * w > MAX_PIXELS:
        raise ImageError(f"image of {w}x{h} exceeds the format limits ({MAX_DIM} per side, {MAX_PIXELS} pixels)")
    return arr


def open_image(path: str) -> np.ndarray:
    """Read an image file; every failure becomes ImageError with the reason."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # decompression-bomb guard: refuse before decoding pixels
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageError(f"{path}: {im.width}x{im.height} exceeds {MAX_PIXELS} pixels")
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)  # animated input: the first frame is encoded
            im.load()
            return to_rgb(im)
    except ImageError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise ImageError(f"{path}: cannot read image ({e})") from None
