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
from encoder.model import ModelConfig, NicModel, load_float32
from encoder.rounding import optimise_rounding
from encoder.sga import EFFORT_ROUNDING, EFFORT_STEPS, refine
from webdecoder import entropy, format
from webdecoder.hyper import hyper_decode
from webdecoder.model import Model, load_model
from webdecoder.tables import FRAC_BITS

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
DEPTH_NAMES = {1: "jpeg", 2: "two"}
COMPLEXITY_WEIGHT = 0.02  # bpp per kMAC/px: depth 2 must buy more than ~0.018 bpp of RD cost to be chosen
Z_MAX = 1 << 11  # |z| cap: keeps hyper-decoder inputs inside the exactness bounds
# The torch model and image in NHWC (channels_last) layout: oneDNN's convolutions run faster on it in eager
# mode, which is what analysis and SGA run in. kodim01, quality 4, depth 2, alternating A/B in one process:
# effort fast 5.9 -> 4.75 s with 2 threads, 9.5 -> 8.5 s with 1; effort none 0.46 -> 0.38 s. Depth 1, whose
# synthesis is a matmul + fold, neither gains nor loses. The files are the same up to float rounding
# (the convolution algorithms differ), as between any two machines.
CHANNELS_LAST = True


class Encoder:
    """The torch encoder paired with the integer decoder model it writes files for."""

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR):
        model_dir = Path(model_dir)
        self.int_model: Model = load_model((model_dir / DECODER_FILE).read_bytes())
        state = torch.load(model_dir / ENCODER_FILE, map_location="cpu", weights_only=False)
        if bytes.fromhex(state["model_id"]) != self.int_model.model_id:
            raise RuntimeError(f"{ENCODER_FILE} does not belong to {DECODER_FILE} (model id mismatch)")
        self.model = load_float32(NicModel(ModelConfig(**state["config"])), state["model"])
        self.model.eval()
        self.model.requires_grad_(False)  # SGA and the rounding differentiate the latents, never the weights
        # One layout for the model and every image it sees, decided here (see CHANNELS_LAST).
        self.memory_format = torch.channels_last if CHANNELS_LAST else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)

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
        x = x.contiguous(memory_format=self.memory_format)
        y, z = refine(self.model, x, quality, DEPTH_NAMES[depth], sga_steps, progress=progress)
        return y[0].numpy().astype(np.float64), z[0].numpy().astype(np.float64)

    def kmac(self, depth: int) -> float:
        return self.int_model.mac_per_px(depth) / 1000

    def encode(self, image: Image.Image | np.ndarray, quality: int = 4, depth: int | str = 2,
               effort: str = "fast", sga_steps: int | None = None, progress: bool = False,
               max_kmac: float | None = None, complexity_weight: float = COMPLEXITY_WEIGHT,
               lanes: str = "auto", rounding: str | None = None) -> bytes:
        """Encode to .nic bytes.

        ``effort``: a preset of ``encoder.sga.EFFORT_STEPS`` (SGA steps, overridden by ``sga_steps``) and
        ``EFFORT_ROUNDING`` (y's rounding: nearest, or rate-distortion optimised, ``encoder.rounding``);
        ``rounding`` ("nearest" or "optimised") overrides the preset's rounding.

        ``depth="auto"`` encodes with every synthesis depth allowed by ``max_kmac`` (decode cost
        cap in kMAC/px) and keeps the one with the lowest ``bpp + lambda * MSE + w * kMAC/px``,
        ``w = complexity_weight`` (bits per pixel one is willing to pay per kMAC/px saved).
        ``lanes``: the y stream's rANS lanes, see ``LANE_POLICIES``.
        """
        if lanes not in LANE_POLICIES:
            raise ValueError(f"lanes must be one of {', '.join(LANE_POLICIES)}")
        if not 0 <= quality < self.qualities:
            raise ValueError(f"quality must be in 0..{self.qualities - 1}")
        if depth != "auto" and depth not in format.DEPTHS:
            raise ValueError("depth must be 1, 2 or 'auto'")
        if effort not in EFFORT_STEPS:
            raise ValueError(f"effort must be one of {', '.join(EFFORT_STEPS)}")
        if sga_steps is None:
            sga_steps = EFFORT_STEPS[effort]
        if rounding not in (None, *ROUNDINGS):
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}")
        rdo = EFFORT_ROUNDING[effort] if rounding is None else rounding == "optimised"
        depths = list(format.DEPTHS) if depth == "auto" else [depth]
        if max_kmac is not None:
            depths = [d for d in depths if self.kmac(d) <= max_kmac]
            if not depths:
                costs = ", ".join(f"depth {d}: {self.kmac(d):.3f}" for d in format.DEPTHS)
                raise ValueError(f"no allowed synthesis depth decodes within {max_kmac} kMAC/px ({costs})")
        rgb = to_rgb(image)
        best, best_cost = b"", float("inf")
        for d in depths:
            with torch.inference_mode(False):
                y, z = self.latents(rgb, quality, d, sga_steps, progress)
            data = self.write(y, z, rgb.shape[1], rgb.shape[0], quality, d, lanes,
                              optimise_for=rgb if rdo else None)
            if len(depths) == 1:
                return data
            cost = self.rd_cost(data, rgb, quality) + complexity_weight * self.kmac(d)
            if cost < best_cost:
                best, best_cost = data, cost
        return best

    def optimise_rounding(self, q: np.ndarray, mean: np.ndarray, scale_idx: np.ndarray, rgb: np.ndarray,
                          quality: int, depth: int) -> np.ndarray:
        """``encoder.rounding.optimise_rounding`` with this model's synthesis, lambda and y tables."""
        qt = torch.tensor([quality])
        name = DEPTH_NAMES[depth]
        target = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
        m = self.int_model
        # callers may run under torch.inference_mode / no_grad (servers do): this step needs a gradient
        with torch.inference_mode(False), torch.enable_grad():
            return optimise_rounding(lambda t: self.model.synthesise(t, qt, name), target,
                                     self.model.cfg.lambdas[quality], q, mean, scale_idx,
                                     np.asarray(m["y.freqs"]), np.asarray(m["y.offsets"]))

    def rd_cost(self, data: bytes, rgb: np.ndarray, quality: int) -> float:
        """bpp + lambda * MSE (0-255 scale) of a file, measured on its real decoded pixels."""
        from webdecoder.decoder import decode_with_model

        out = decode_with_model(data, self.int_model)
        mse = float(np.mean((out.astype(np.float64) - rgb) ** 2))
        return 8 * len(data) / (rgb.shape[0] * rgb.shape[1]) + self.model.cfg.lambdas[quality] * mse

    def write(self, y: np.ndarray, z: np.ndarray, width: int, height: int, quality: int, depth: int,
              lanes: str = "auto", optimise_for: np.ndarray | None = None) -> bytes:
        """Quantise continuous latents and write the file (the decoder's steps, mirrored).

        y - mean is rounded to the nearest integer, then, given ``optimise_for`` (the image, HxWx3 uint8),
        moved where that lowers the file's real rate-distortion cost (``encoder.rounding``).
        """
        m = self.int_model
        z_hat = np.clip(np.round(z), -Z_MAX, Z_MAX).astype(np.int64)
        means_fx, scale_idx = hyper_decode(m, z_hat)
        mean = means_fx / float(1 << FRAC_BITS)
        q = np.clip(np.round(y - mean), -entropy.MAX_ABS, entropy.MAX_ABS).astype(np.int64)
        if optimise_for is not None:
            q = self.optimise_rounding(q, mean, scale_idx, optimise_for, quality, depth)
        cz = z_hat.shape[0]
        z_tables = np.repeat(np.arange(cz, dtype=np.int64), z_hat[0].size)
        z_lanes = choose_lanes(z_hat.ravel(), z_tables, m["z.freqs"], m["z.offsets"], 64)
        y_lanes = choose_lanes(q.ravel(), scale_idx.ravel(), m["y.freqs"], m["y.offsets"], format.MAX_LANES,
                               compact=lanes == "compact")
        z_rans, z_esc = entropy.encode_values(z_hat, z_tables, m["z.freqs"], m["z.offsets"], z_lanes)
        y_rans, y_esc = entropy.encode_values(q, scale_idx.ravel(), m["y.freqs"], m["y.offsets"], y_lanes)
        header = format.Header(
            depth=depth, quality=quality, width=width, height=height, z_lanes=z_lanes, y_lanes=y_lanes,
            model_id=m.model_id, mac_per_px=m.mac_per_px(depth),
            z_rans_len=len(z_rans), z_esc_len=len(z_esc), y_rans_len=len(y_rans), y_esc_len=len(y_esc),
        )
        return format.pack(header, z_rans, z_esc, y_rans, y_esc)


# One lane per this many estimated bytes, rounded to the nearest count (not to a power of two: a stream just
# under a step then had half the lanes and twice the NumPy steps; BENCHMARKS.md, session 16). 128 keeps the
# bytes of the earlier power-of-two policy at 96 B, whose lanes averaged ~140 B.
BYTES_PER_LANE = 128

# How many rANS lanes the y stream gets. Every lane ends with ~2-3 bytes that no symbol paid for (its
# state starts at 2^16), but CPython's NumPy decoder runs one step per symbol of a lane, at ~20 us a step
# whatever the width, so its speed wants many lanes. The browser's C step loop costs the same per symbol
# at any lane count. "auto": one lane per ~BYTES_PER_LANE estimated bytes (CPython decodes a Kodak image
# at quality 4 in ~13-24 ms of y); "compact": the fewest the format allows (ceil(symbols / MAX_STEPS)),
# 1-3 % smaller files for deployments that decode in browsers only (CPython's y decode then runs up to
# MAX_STEPS steps: 13 -> 124 ms for kodim01 at quality 4). BENCHMARKS.md "Entropy coder" has the figures.
LANE_POLICIES = ("auto", "compact")
ROUNDINGS = ("nearest", "optimised")  # y's rounding: to the nearest integer, or encoder.rounding's search


def min_lanes(symbols: int) -> int:
    """The fewest lanes the format allows for a stream: its decoder runs at most ``MAX_STEPS`` steps."""
    return max(1, -(-symbols // format.MAX_STEPS))


def choose_lanes(values: np.ndarray, tables: np.ndarray, freqs: np.ndarray, offsets: np.ndarray,
                 max_lanes: int, compact: bool = False) -> int:
    """Lane count from the stream's estimated size: more lanes decode faster, each costs 4 bytes.

    ``compact``: the fewest lanes the format allows, whatever the size (see ``LANE_POLICIES``).
    """
    if compact:
        return min(max_lanes, min_lanes(values.size))
    r = entropy.half_ranges(offsets)[tables]
    sym = np.where(np.abs(values) > r, 2 * r + 1, values + r)
    est_bytes = float(np.sum(PRECISION_BITS - np.log2(freqs[offsets[tables] + sym]))) / 8
    lanes = round(est_bytes / BYTES_PER_LANE)
    # the format caps the steps of the decoder's loop: at least ceil(n / MAX_STEPS) lanes
    return int(min(max_lanes, max(lanes, min_lanes(values.size))))


PRECISION_BITS = 16


@lru_cache(maxsize=2)
def default_encoder(model_dir: str = str(DEFAULT_MODEL_DIR)) -> Encoder:
    return Encoder(model_dir)


def encode(image: Image.Image | np.ndarray, quality: int = 4, depth: int | str = 2, effort: str = "fast",
           sga_steps: int | None = None, max_kmac: float | None = None, lanes: str = "auto",
           rounding: str | None = None) -> bytes:
    """Encode a PIL image or HxWx3 uint8 array to .nic bytes with the shipped model."""
    return default_encoder().encode(image, quality, depth, effort, sga_steps, max_kmac=max_kmac, lanes=lanes,
                                    rounding=rounding)
