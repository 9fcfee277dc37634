"""Torch checkpoint -> integer model file for ``webdecoder`` (+ the encoder's float weights).

The only bridge between the two worlds. Weights become integers with a
per-layer shift chosen so that |w| < 2^14; activations are fixed point with
``FRAC_BITS`` fraction bits; the last synthesis layer absorbs the 255 scale and
the +0.5 offset so that its output is a pixel value. The probability tables
are built here once, as integers, and stored in the file.

    nic export runs/main/last.pt -o models/
"""

from __future__ import annotations

import lzma
import math
import os
from pathlib import Path

import numpy as np
import torch

from encoder.batch import write_atomic
from encoder.model import ModelConfig, NicModel, decode_kmac_per_px
from webdecoder.model import MODEL_SUFFIX, RETIRED_SUFFIX, model_id_of, save_model
from webdecoder.synthesis import SYN_FRAC_BITS
from webdecoder.tables import FRAC_BITS, gaussian_tables, quantize_pmf

WEIGHT_BITS = 14  # |w_int| < 2^14 keeps every sum below 2^53 (docs/FORMAT.md)
# The latent-facing synthesis layers (k18/s16, k13/s8) are the decoder's largest products. With the latent at
# 8 fraction bits (|x| < 2^13 on Kodak) and their weights below 2^12, the browser's int16 kernel does them in
# one pass (a block of 8 products adds < 8 * 2^12 * 2^13 = 2^28 to an int32 sum: a flush every 8 blocks) instead
# of two (hi and lo halves of a 17-bit input): -0.0005 dB PSNR on Kodak against 12 fraction bits and 14-bit
# weights (kodim01/04/07/13/19/23, qualities 0/4/7, both depths).
SYN_IN_FRAC_BITS = 8
SYN_IN_WEIGHT_BITS = 12
INVGAIN_SHIFT = 16
Z_TAIL = 1e-6  # the factorized z tables cover all but this much mass per channel
DECODER_FILE = "nic.npz"
ENCODER_FILE = "nic-encoder.pt"


def _weight(w: torch.Tensor, scale: float = 1.0, bits: int = WEIGHT_BITS) -> tuple[np.ndarray, int]:
    w = w.detach().double().numpy() * scale
    m = float(np.abs(w).max()) or 1.0
    shift = max(0, min(40, math.floor(math.log2((2**bits - 1) / m))))
    return np.round(w * 2.0**shift).astype(np.int16), shift  # bits <= 14: int16 halves the model file


def _layer(arrays: dict, name: str, conv: torch.nn.Module, scale: float = 1.0, offset: float = 0.0,
           output: bool = False, frac: int = SYN_FRAC_BITS, in_frac: int | None = None,
           bits: int = WEIGHT_BITS) -> None:
    """Integer weights (below 2^bits), bias at the accumulator's scale, and the shift from the accumulator
    (input at ``in_frac`` fraction bits, default ``frac``) back to ``frac`` bits, or to whole pixel values
    for an ``output`` layer."""
    in_frac = frac if in_frac is None else in_frac
    w, shift = _weight(conv.weight, scale, bits)
    b = conv.bias.detach().double().numpy() * scale + offset
    back = shift + in_frac - (0 if output else frac)
    if back < 1:
        raise ValueError(f"{name}: weights too large for {bits}-bit integers at {in_frac} input fraction bits")
    arrays[f"{name}.w"] = w
    arrays[f"{name}.b"] = np.round(b * 2.0 ** (in_frac + shift)).astype(np.int64)
    arrays[f"{name}.shift"] = np.array(back)


def z_tables(model: NicModel) -> tuple[np.ndarray, np.ndarray]:
    """Integer tables of the factorized prior, one per z channel, with escape."""
    eb = model.entropy_bottleneck
    cz = model.cfg.z_channels
    grid = torch.arange(-512, 513, dtype=torch.float32)
    with torch.no_grad():
        lik, _, _ = eb._likelihood(grid.repeat(cz, 1).reshape(cz, 1, -1))
    pmf = lik.reshape(cz, -1).double().numpy()
    parts = []
    for c in range(cz):
        p = pmf[c]
        r = 1
        while r < 512 and p[512 - r : 512 + r + 1].sum() < 1 - Z_TAIL:
            r += 1
        parts.append(quantize_pmf(p[512 - r : 512 + r + 1]))
    return np.concatenate(parts), np.cumsum([0] + [q.size for q in parts]).astype(np.int64)


def retire(data: bytes, legacy_dir: Path) -> Path:
    """Keep a replaced decoder file as legacy_dir/nic-<id>.npz.xz: files encoded with it must still decode.

    xz at its strongest preset (the int16 weights and int64 tables shrink to 60 %); for one liblzma its output
    is a pure function of the input, so retiring the same file twice writes the same bytes.
    """
    stem = f"nic-{model_id_of(data).hex()}"
    retired = legacy_dir / (stem + RETIRED_SUFFIX)
    if not retired.exists():
        write_atomic(retired, lzma.compress(data, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME))
    (legacy_dir / (stem + MODEL_SUFFIX)).unlink(missing_ok=True)  # an uncompressed copy from before
    return retired


def _retire_previous(decoder_file: Path) -> None:
    if decoder_file.is_file():
        retire(decoder_file.read_bytes(), decoder_file.parent / "legacy")


def export(ckpt_path: str | Path, out_dir: str | Path = "models") -> str:
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    cfg = ModelConfig(**state["config"])
    model = NicModel(cfg)
    model.load_state_dict(state["model"])
    model.eval()
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.h_s.layers):
        _layer(arrays, f"h{i}", layer, frac=FRAC_BITS)
    latent = {"in_frac": SYN_IN_FRAC_BITS, "bits": SYN_IN_WEIGHT_BITS}
    arrays["syn.in_frac"] = np.array(SYN_IN_FRAC_BITS)
    _layer(arrays, "jpeg", model.g_s["jpeg"].conv, 255.0, 127.5, output=True, **latent)
    two = model.g_s["two"]
    _layer(arrays, "two.up", two.up, **latent)
    _layer(arrays, "two.res", two.res, **latent)
    _layer(arrays, "two.out", two.out, 255.0, 127.5, output=True)
    beta, gamma = two.igdn.weights()
    g, gshift = _weight(gamma)
    arrays["two.gdn.gamma"] = g
    arrays["two.gdn.beta"] = np.round(beta.detach().double().numpy() * 2.0 ** (SYN_FRAC_BITS + gshift)).astype(np.int64)
    arrays["two.gdn.shift"] = np.array(gshift)
    inv = torch.exp(-model.log_gain.detach().double()).numpy()
    arrays["invgain"] = np.round(inv * 2**INVGAIN_SHIFT).astype(np.int64)
    arrays["invgain.shift"] = np.array(INVGAIN_SHIFT)
    arrays["y.freqs"], arrays["y.offsets"] = gaussian_tables()
    arrays["z.freqs"], arrays["z.offsets"] = z_tables(model)
    meta = {
        "format_version": 1,
        "config": state["config"],
        "qualities": cfg.qualities,
        "lambdas": cfg.lambdas,
        "mac_per_px": {str(d): round(decode_kmac_per_px(cfg, d) * 1000) for d in (1, 2)},
        "trained_steps": int(state.get("step", 0)),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _retire_previous(out_dir / DECODER_FILE)
    model_id = save_model(arrays, meta, out_dir / DECODER_FILE)
    # The encoder's float weights (analysis, hyperprior, synthesis for SGA) in half precision,
    # tagged with the id of the decoder file they belong to.
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    tmp = out_dir / (ENCODER_FILE + ".tmp")
    torch.save({"model": half, "config": state["config"], "model_id": model_id,
                "trained_steps": meta["trained_steps"]}, tmp)
    os.replace(tmp, out_dir / ENCODER_FILE)
    return model_id
