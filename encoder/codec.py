"""encode(image) -> .nic bytes: analysis, SGA, the decoder's own integer hyper-decoder, rANS, format.

Mirrors ``webdecoder.decoder.decode`` step by step. The encoder runs the
decoder's integer ``hyper_decode`` on the quantised z, so both sides pick the
same probability table for every latent by construction.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
import torch
import torch.nn.functional as F

from encoder.export import DECODER_FILE, ENCODER_FILE
from encoder.image import to_rgb
from encoder.model import ModelConfig, NicModel
from encoder.sga import EFFORT_STEPS, refine
from webdecoder import entropy, format
from webdecoder.hyper import hyper_decode
from webdecoder.model import Model, load_model
from webdecoder.tables import FRAC_BITS

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
DEPTH_NAMES = {1: "jpeg", 2: "two"}
Z_MAX = 1 << 11  # |z| cap: keeps hyper-decoder inputs inside the exactness bounds


class Encoder:
    """The torch encoder paired with the integer decoder model it writes files for."""

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR):
        model_dir = Path(model_dir)
        self.int_model: Model = load_model((model_dir / DECODER_FILE).read_bytes())
        state = torch.load(model_dir / ENCODER_FILE, map_location="cpu", weights_only=False)
        if bytes.fromhex(state["model_id"]) != self.int_model.model_id:
            raise RuntimeError(f"{ENCODER_FILE} does not belong to {DECODER_FILE} (model id mismatch)")
        self.model = NicModel(ModelConfig(**state["config"]))
        self.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
        self.model.eval()

    @property
    def qualities(self) -> int:
        return self.model.cfg.qualities

    def latents(self, rgb: np.ndarray, quality: int, depth: int, sga_steps: int,
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Continuous (y_g, z) as float arrays for a padded image."""
        h, w, _ = rgb.shape
        hp, wp = -(-h // format.STRIDE) * format.STRIDE, -(-w // format.STRIDE) * format.STRIDE
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255.0
        # replicate padding works for any size, 1x1 included, and adds no fake edges
        x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
        y, z = refine(self.model, x, quality, DEPTH_NAMES[depth], sga_steps, progress=progress)
        return y[0].numpy().astype(np.float64), z[0].numpy().astype(np.float64)

    def encode(self, image: Image.Image | np.ndarray, quality: int = 4, depth: int = 2,
               effort: str = "fast", sga_steps: int | None = None, progress: bool = False) -> bytes:
        if not 0 <= quality < self.qualities:
            raise ValueError(f"quality must be in 0..{self.qualities - 1}")
        if depth not in format.DEPTHS:
            raise ValueError("depth must be 1 or 2")
        if sga_steps is None:
            if effort not in EFFORT_STEPS:
                raise ValueError(f"effort must be one of {', '.join(EFFORT_STEPS)}")
            sga_steps = EFFORT_STEPS[effort]
        rgb = to_rgb(image)
        with torch.inference_mode(False):
            y, z = self.latents(rgb, quality, depth, sga_steps, progress)
        return self.write(y, z, rgb.shape[1], rgb.shape[0], quality, depth)

    def write(self, y: np.ndarray, z: np.ndarray, width: int, height: int, quality: int, depth: int) -> bytes:
        """Quantise continuous latents and write the file (the decoder's steps, mirrored)."""
        m = self.int_model
        z_hat = np.clip(np.round(z), -Z_MAX, Z_MAX).astype(np.int64)
        means_fx, scale_idx = hyper_decode(m, z_hat)
        q = np.round(y - means_fx / float(1 << FRAC_BITS)).astype(np.int64)
        q = np.clip(q, -entropy.MAX_ABS, entropy.MAX_ABS)
        cz = z_hat.shape[0]
        z_tables = np.repeat(np.arange(cz, dtype=np.int64), z_hat[0].size)
        z_lanes = choose_lanes(z_hat.ravel(), z_tables, m["z.freqs"], m["z.offsets"], 64)
        y_lanes = choose_lanes(q.ravel(), scale_idx.ravel(), m["y.freqs"], m["y.offsets"], format.MAX_LANES)
        z_rans, z_esc = entropy.encode_values(z_hat, z_tables, m["z.freqs"], m["z.offsets"], z_lanes)
        y_rans, y_esc = entropy.encode_values(q, scale_idx.ravel(), m["y.freqs"], m["y.offsets"], y_lanes)
        header = format.Header(
            depth=depth, quality=quality, width=width, height=height, z_lanes=z_lanes, y_lanes=y_lanes,
            model_id=m.model_id, mac_per_px=m.mac_per_px(depth),
            z_rans_len=len(z_rans), z_esc_len=len(z_esc), y_rans_len=len(y_rans), y_esc_len=len(y_esc),
        )
        return format.pack(header, z_rans, z_esc, y_rans, y_esc)


BYTES_PER_LANE = 96  # a lane costs 4 bytes of final state: aim at about 4% overhead


def choose_lanes(values: np.ndarray, tables: np.ndarray, freqs: np.ndarray, offsets: np.ndarray,
                 max_lanes: int) -> int:
    """Lane count from the stream's estimated size: more lanes decode faster, each costs 4 bytes."""
    r = entropy.half_ranges(offsets)[tables]
    sym = np.where(np.abs(values) > r, 2 * r + 1, values + r)
    est_bytes = float(np.sum(PRECISION_BITS - np.log2(freqs[offsets[tables] + sym]))) / 8
    lanes = 1 << max(0, int(np.log2(max(1.0, est_bytes / BYTES_PER_LANE))))
    return int(min(max_lanes, lanes))


PRECISION_BITS = 16


@lru_cache(maxsize=2)
def default_encoder(model_dir: str = str(DEFAULT_MODEL_DIR)) -> Encoder:
    return Encoder(model_dir)


def encode(image: Image.Image | np.ndarray, quality: int = 4, depth: int = 2, effort: str = "fast",
           sga_steps: int | None = None) -> bytes:
    """Encode a PIL image or HxWx3 uint8 array to .nic bytes with the shipped model."""
    return default_encoder().encode(image, quality, depth, effort, sga_steps)
