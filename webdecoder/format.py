"""The .nic byte layout (docs/FORMAT.md): the only code that knows it.

``pack`` is used by the encoder, ``parse`` by the decoder; field names match
the table in docs/FORMAT.md. All integers little-endian.
"""

from __future__ import annotations

from dataclasses import dataclass
import struct
import zlib

from webdecoder.errors import NicError

MAGIC = b"\x89NIC"  # high bit set: not text; "NIC" for humans reading a hex dump
VERSION = 1
PRECISION = 16  # rANS probability precision in bits; fixed by version 1
HEADER = struct.Struct("<4sBBBBHHHH8sIIIIII")
HEADER_SIZE = HEADER.size  # 48
CRC_OFFSET = 44  # the CRC covers the header before it and the whole payload
MAX_DIM = 8192  # maximum width or height
MAX_PIXELS = 1 << 24  # maximum width * height (16.7 Mpx): bounds every allocation
MAX_LANES = 4096
MAX_STEPS = 16384  # ceil(symbols / lanes) per stream: bounds the decoder's loop whatever the lanes
DEPTHS = (1, 2)  # 1 = JPEG-like linear synthesis, 2 = two-layer synthesis
STRIDE = 64  # the encoder pads to a multiple of this (total hyperprior down-sampling)


@dataclass(frozen=True)
class Header:
    depth: int
    quality: int
    width: int
    height: int
    z_lanes: int
    y_lanes: int
    model_id: bytes  # first 8 bytes of the SHA-256 of the model file
    mac_per_px: int  # decode cost of this file, multiply-adds per pixel
    z_rans_len: int
    z_esc_len: int
    y_rans_len: int
    y_esc_len: int

    @property
    def payload_len(self) -> int:
        return self.z_rans_len + self.z_esc_len + self.y_rans_len + self.y_esc_len

    def sections(self, data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """(z_rans, z_esc, y_rans, y_esc) slices of a whole file; z comes first for previews."""
        o = HEADER_SIZE
        cuts = []
        for n in (self.z_rans_len, self.z_esc_len, self.y_rans_len, self.y_esc_len):
            cuts.append(data[o : o + n])
            o += n
        return tuple(cuts)


def pack(h: Header, z_rans: bytes, z_esc: bytes, y_rans: bytes, y_esc: bytes) -> bytes:
    payload = z_rans + z_esc + y_rans + y_esc
    head = HEADER.pack(
        MAGIC, VERSION, h.depth, h.quality, PRECISION, h.width, h.height, h.z_lanes, h.y_lanes,
        h.model_id, h.mac_per_px, len(z_rans), len(z_esc), len(y_rans), len(y_esc), 0,
    )
    crc = zlib.crc32(payload, zlib.crc32(head[:CRC_OFFSET]))
    return head[:CRC_OFFSET] + struct.pack("<I", crc) + payload


def parse(data: bytes, check_crc: bool = True, partial: bool = False) -> Header:
    """Validate the header and the stream lengths; raise NicError on anything outside the spec.

    ``partial=True`` accepts a prefix of a file (a download in progress): the length must only
    reach the end of the z section, and the CRC, which needs every byte, is not checked.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise NicError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise NicError(f"file too short for a .nic header ({len(data)} of {HEADER_SIZE} bytes)")
    (magic, version, depth, quality, precision, width, height, z_lanes, y_lanes, model_id,
     mac, zr, ze, yr, ye, crc) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise NicError("not a .nic file (bad magic)")
    if version != VERSION:
        raise NicError(f"unsupported .nic version {version} (this decoder reads {VERSION})")
    if depth not in DEPTHS:
        raise NicError(f"synthesis depth {depth} is not 1 or 2")
    if precision != PRECISION:
        raise NicError(f"entropy-coder precision {precision} is not {PRECISION}")
    if not (1 <= width <= MAX_DIM and 1 <= height <= MAX_DIM):
        raise NicError(f"image size {width}x{height} outside 1..{MAX_DIM}")
    if width * height > MAX_PIXELS:
        raise NicError(f"image of {width * height} pixels exceeds the limit of {MAX_PIXELS}")
    for name, lanes in (("z", z_lanes), ("y", y_lanes)):
        if not 1 <= lanes <= MAX_LANES:
            raise NicError(f"{name} lane count {lanes} outside 1..{MAX_LANES}")
    h = Header(depth, quality, width, height, z_lanes, y_lanes, model_id, mac, zr, ze, yr, ye)
    if partial:
        if len(data) < HEADER_SIZE + zr + ze:
            raise NicError("not enough bytes yet for a preview (need the header and the z section)")
        return h
    if HEADER_SIZE + h.payload_len != len(data):
        raise NicError(
            f"stream lengths say {HEADER_SIZE + h.payload_len} bytes, file has {len(data)} (truncated or padded)"
        )
    if check_crc and zlib.crc32(data[HEADER_SIZE:], zlib.crc32(data[:CRC_OFFSET])) != crc:
        raise NicError("CRC32 mismatch (corrupt file)")
    return h


def latent_shape(width: int, height: int) -> tuple[int, int, int, int]:
    """(y rows, y cols, z rows, z cols) for an image padded to a multiple of STRIDE."""
    hz, wz = -(-height // STRIDE), -(-width // STRIDE)
    return 4 * hz, 4 * wz, hz, wz
