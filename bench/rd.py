"""Rate-distortion evaluation of nic against JPEG, WebP, AVIF and JPEG XL.

Every image of a folder is encoded by every codec configuration at every quality
setting; rates are the *real* size of the encoded file (header included), never an
entropy estimate; PSNR-RGB and MS-SSIM are computed on the uint8 reconstruction the
decoder returns. Per quality setting the per-image numbers are averaged (mean of
per-image PSNR, as CompressAI and the paper do) and written in CompressAI's results
layout, one JSON file per configuration, so that they can be plotted with the anchors
in ``bench/anchors``.

Usage::

    python -m bench.rd ../shared/data/kodak --out runs/eval/kodak --workers 2
    python -m bench.rd ../shared/data/kodak --codecs jpeg webp --limit 3     # quick look

Outputs in ``out_dir``: ``<config>.json`` (CompressAI layout), ``per_image.json``,
``bdrate.json``, ``summary.md`` (tables to paste into BENCHMARKS.md), ``rd.png``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
import hashlib
import io
import json
import math
import multiprocessing as mp
import os
from pathlib import Path
import platform
import time
from typing import Any

import numpy as np
from PIL import Image

from bench.bdrate import bd_rate, msssim_db

ANCHORS_ROOT = Path(os.environ.get("NIC_ANCHORS", Path(__file__).resolve().parent / "anchors"))
# Reference curves drawn on the plot and used as BD-rate columns when the dataset has anchors.
DEFAULT_ANCHORS = (
    "paper-shallow-ntc-jpeg-like-syn.json",
    "paper-shallow-ntc-2-layer-syn.json",
    "paper-shallow-ntc-2-layer-syn-sga.json",
    "compressai-mbt2018-mean_mse_cpu.json",
    "bpg_444_x265_ycbcr.json",
    "vtm.json",
)
IMAGE_EXTS = (".png", ".ppm", ".bmp", ".tif", ".tiff")

CLASSICAL = ("jpeg", "webp", "avif", "jxl")
NIC_EFFORTS = ("none", "light", "fast", "default", "best")  # = encoder.sga.EFFORT_STEPS (tests check)
# "<preset>-nearest": the preset's SGA steps with y rounded to the nearest integer (the A/B of encoder/rounding.py)
NIC_EVAL_EFFORTS = (*NIC_EFFORTS, "fast-nearest", "default-nearest", "best-nearest")

# Quality sweeps chosen (on Kodak) to span roughly 0.05-2 bpp; each codec's own knob.
# JPEG cannot go below ~0.1 bpp on Kodak and JPEG XL's largest distance (25) gives ~0.13 bpp.
DEFAULT_SWEEPS: dict[str, tuple[float, ...]] = {
    "jpeg": (3, 5, 8, 12, 18, 25, 35, 50, 65, 75, 85, 90),  # libjpeg quality
    "webp": (0, 5, 10, 20, 30, 45, 60, 75, 85, 90, 94),  # libwebp quality
    "avif": (0, 8, 16, 24, 32, 40, 50, 60, 70, 80, 88),  # libavif quality
    "jxl": (25, 15, 10, 7, 5, 3.5, 2.5, 1.8, 1.3, 1.0, 0.7),  # butteraugli distance (lower = better)
}
# Encoder settings, recorded in every output file. They are the strongest reasonable
# settings of each library rather than web defaults: JPEG with optimized Huffman tables,
# WebP method 6, AVIF 4:4:4 (we score RGB PSNR; 4:2:0 loses ~0.3 dB at high rate).
CLASSICAL_SETTINGS: dict[str, dict[str, Any]] = {
    "jpeg": {"optimize": True, "subsampling": "4:2:0"},
    "webp": {"method": 6},
    "avif": {"speed": 6, "subsampling": "4:4:4"},
    "jxl": {"effort": 7},
}


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class Config:
    """One curve: a codec with fixed settings, swept over ``qualities``."""

    name: str
    codec: str  # "jpeg" | "webp" | "avif" | "jxl" | "nic"
    qualities: tuple[float, ...]
    depth: int | None = None
    effort: str | None = None
    model_dir: str | None = None  # nic only: None = the shipped models/
    lanes: str = "auto"  # nic only: the y stream's rANS lane policy (encoder.codec.LANE_POLICIES)

    def description(self) -> str:
        if self.codec == "nic":
            lanes = "" if self.lanes == "auto" else f", {self.lanes} lanes"
            return f"nic depth {self.depth}, effort {self.effort}{lanes}, model {self.model_dir or 'models/'}"
        return f"{self.codec.upper()} ({library_version(self.codec)}), settings {CLASSICAL_SETTINGS[self.codec]}"


def library_version(codec: str) -> str:
    """Which library (and version) produced a classical curve, for the results' description."""
    import PIL
    from PIL import features

    if codec == "jxl":
        import imagecodecs

        return f"imagecodecs {imagecodecs.__version__}, {imagecodecs.jpegxl_version()}"
    if codec == "jpeg" and features.check_feature("libjpeg_turbo"):
        return f"Pillow {PIL.__version__}, libjpeg-turbo {features.version_feature('libjpeg_turbo')}"
    lib = {"jpeg": ("jpg", "libjpeg"), "webp": ("webp", "libwebp"), "avif": ("avif", "libavif")}[codec]
    return f"Pillow {PIL.__version__}, {lib[1]} {features.version(lib[0])}"


def nic_config_name(depth: int, effort: str, lanes: str = "auto") -> str:
    return f"nic-d{depth}-{effort}" + ("" if lanes == "auto" else f"-{lanes}")


def build_configs(
    codecs: Sequence[str],
    qualities: Sequence[int] | None,
    nic_efforts: Sequence[str],
    depths: Sequence[int],
    sweeps: dict[str, Sequence[float]] | None = None,
    model_dir: str | None = None,
    lanes: Sequence[str] = ("auto",),
) -> list[Config]:
    out: list[Config] = []
    sweeps = {**DEFAULT_SWEEPS, **(sweeps or {})}
    for c in codecs:
        if c == "nic":
            qs = tuple(qualities) if qualities is not None else tuple(_nic_qualities(model_dir))
            for d in depths:
                for e in nic_efforts:
                    if e not in NIC_EVAL_EFFORTS:
                        raise ValueError(f"unknown nic effort {e!r}; expected one of {NIC_EVAL_EFFORTS}")
                    for lane in lanes:
                        out.append(Config(nic_config_name(d, e, lane), "nic", qs, d, e, model_dir, lane))
        elif c in CLASSICAL:
            out.append(Config(c, c, tuple(sweeps[c])))
        else:
            raise ValueError(f"unknown codec {c!r}; expected nic or one of {CLASSICAL}")
    return out


def _nic_qualities(model_dir: str | None = None) -> list[int]:
    if model_dir:
        return list(range(_nic_encoder(model_dir).qualities))
    import encoder  # lazily imported: classical-only runs must not need the model)

    q = getattr(encoder, "QUALITIES", 8)
    return list(range(q)) if isinstance(q, int) else list(q)


# --------------------------------------------------------------------------- codecs


def _pil_encode(x: np.ndarray, **kw: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, **kw)
    return buf.getvalue()


def _pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def encode_classical(codec: str, x: np.ndarray, q: float) -> bytes:
    s = CLASSICAL_SETTINGS[codec]
    if codec == "jpeg":
        return _pil_encode(x, format="JPEG", quality=int(q), **s)
    if codec == "webp":
        return _pil_encode(x, format="WEBP", quality=int(q), **s)
    if codec == "avif":
        # max_threads=1: timings comparable with the single-threaded decoders; parallelism is across images
        return _pil_encode(x, format="AVIF", quality=int(q), max_threads=1, **s)
    if codec == "jxl":
        import imagecodecs

        return bytes(imagecodecs.jpegxl_encode(x, distance=float(q), numthreads=1, **s))
    raise ValueError(codec)


def decode_classical(codec: str, data: bytes) -> np.ndarray:
    if codec == "jxl":
        import imagecodecs

        return np.asarray(imagecodecs.jpegxl_decode(data, numthreads=1))
    return _pil_decode(data)


@lru_cache(maxsize=2)
def _nic_encoder(model_dir: str):
    """An encoder for another model folder; its decoder model is registered so decode() finds it."""
    from encoder.codec import Encoder
    import webdecoder

    for f in sorted(Path(model_dir).glob("*.npz")):
        webdecoder.register_model(f.read_bytes())
    return Encoder(model_dir)


def _nic_preset(effort: str | None) -> tuple[str, str | None]:
    """An evaluated effort as (encoder preset, rounding override): "default-nearest" -> ("default", "nearest")."""
    preset, _, nearest = (effort or "none").partition("-")
    return preset, "nearest" if nearest else None


def _nic_encode(cfg: Config, x: np.ndarray, q: float) -> bytes:
    effort, rounding = _nic_preset(cfg.effort)
    if cfg.model_dir:
        return _nic_encoder(cfg.model_dir).encode(x, int(q), cfg.depth, effort, lanes=cfg.lanes, rounding=rounding)
    import encoder

    return encoder.encode(x, quality=int(q), depth=cfg.depth, effort=effort, lanes=cfg.lanes, rounding=rounding)


_warm: set[str | None] = set()


def _warmup(cfg: Config) -> None:
    """Load models and libraries before the clock starts: first calls per process are not per-image costs."""
    key = cfg.model_dir if cfg.codec == "nic" else cfg.codec
    if key in _warm:
        return
    tiny = np.full((16, 16, 3), 128, np.uint8)
    if cfg.codec == "nic":
        _nic_decode(_nic_encode(Config("warmup", "nic", (0,), cfg.depth, "none", cfg.model_dir), tiny, 0))
    else:  # first calls pay one-off library set-up
        decode_classical(cfg.codec, encode_classical(cfg.codec, tiny, cfg.qualities[0]))
    _warm.add(key)


def _nic_decode(data: bytes) -> np.ndarray:
    import webdecoder

    return webdecoder.decode(data)


def _nic_info(data: bytes) -> dict[str, Any]:
    import webdecoder

    i = webdecoder.info(data)
    return {k: i[k] for k in ("model_id", "kmac_per_px", "y_lanes", "z_lanes") if k in i}


# --------------------------------------------------------------------------- metrics


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM on RGB uint8 images (data range 255), NaN if the image is too small for 5 scales."""
    from pytorch_msssim import ms_ssim as _ms_ssim
    import torch

    # 5 scales with an 11-tap window need the short side > (11 - 1) * 2**4 = 160
    if min(a.shape[:2]) <= 160:
        return math.nan
    # float32 is 4x faster than float64 here and agrees to ~1e-7
    ta = torch.from_numpy(np.array(a, np.float32)).permute(2, 0, 1)[None]
    tb = torch.from_numpy(np.array(b, np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return float(_ms_ssim(ta, tb, data_range=255.0))


# --------------------------------------------------------------------------- work


def load_rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def list_images(dataset_dir: str | Path, limit: int | None = None) -> list[Path]:
    files = sorted(p for p in Path(dataset_dir).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FileNotFoundError(f"no images in {dataset_dir}")
    return files[:limit] if limit else files


def _run_one(path: str, cfg: Config) -> list[dict[str, Any]]:
    """All qualities of one configuration on one image (the unit of parallel work)."""
    x = load_rgb(path)
    h, w = x.shape[:2]
    rows = []
    _warmup(cfg)
    for q in cfg.qualities:
        t0 = time.perf_counter()
        data = _nic_encode(cfg, x, q) if cfg.codec == "nic" else encode_classical(cfg.codec, x, q)
        t1 = time.perf_counter()
        rec = _nic_decode(data) if cfg.codec == "nic" else decode_classical(cfg.codec, data)
        t2 = time.perf_counter()
        if rec.shape != x.shape or rec.dtype != np.uint8:
            raise RuntimeError(f"{cfg.name} q={q} on {path}: decoded {rec.shape} {rec.dtype}, expected {x.shape} uint8")
        extra = _nic_info(data) if cfg.codec == "nic" else {}
        rows.append(
            {
                **extra,
                "image": Path(path).name,
                "config": cfg.name,
                "quality": q,
                "width": w,
                "height": h,
                "bytes": len(data),
                "bpp": 8.0 * len(data) / (h * w),
                "psnr-rgb": psnr_rgb(x, rec),
                "ms-ssim": ms_ssim(x, rec),
                "encoding_time": t1 - t0,
                "decoding_time": t2 - t1,
            }
        )
    return rows


def _set_threads(threads: int) -> None:
    # Parallelism is across images (one process each); intra-op threads would only fight each
    # other and whatever else runs (a trainer). 2 torch threads made MS-SSIM 9x slower here.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="task", dynamic_ncols=True)
    except ImportError:  # pragma: no cover
        return None


DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


def _model_fingerprint(model_dir: str | None) -> str:
    """Content hash of the nic model files, so that cached results of another model are never reused."""
    h = hashlib.sha256()
    d = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
    for f in sorted([*d.glob("nic.npz"), *d.glob("nic-encoder.pt")]):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _task_key(cfg: Config, fingerprint: str | None) -> str:
    spec = {
        "codec": cfg.codec,
        "qualities": list(cfg.qualities),
        "depth": cfg.depth,
        "effort": cfg.effort,
        "settings": CLASSICAL_SETTINGS.get(cfg.codec),
        "model": fingerprint,
    }
    if cfg.lanes != "auto":  # only then: results saved before the setting existed keep their keys
        spec["lanes"] = cfg.lanes
    if cfg.codec == "nic":
        preset, rounding = _nic_preset(cfg.effort)
        if preset != "none" and rounding is None:  # session 19: these presets' files changed (encoder/rounding.py)
            spec["rounding"] = "optimised"
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _part_path(out: Path, cfg: Config, image: Path, key: str) -> Path:
    return out / "parts" / cfg.name / f"{image.stem}-{key}.json"


# --------------------------------------------------------------------------- aggregation


def _nanmean(v: Iterable[float]) -> float:
    a = np.asarray(list(v), dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


def aggregate(rows: list[dict[str, Any]], cfg: Config, meta: dict[str, Any]) -> dict[str, Any]:
    """CompressAI results layout for one configuration: one entry per quality, averaged over images."""
    by_q: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_q[r["quality"]].append(r)
    qs = sorted(by_q, key=lambda q: _nanmean(r["bpp"] for r in by_q[q]))  # increasing rate
    res: dict[str, list[float]] = defaultdict(list)
    for q in qs:
        g = by_q[q]
        res["quality"].append(q)
        for k in ("bpp", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time"):
            res[k].append(_nanmean(r[k] for r in g))
    # "ms-ssim-rgb" duplicates "ms-ssim": the anchors in bench/anchors use that key
    res["ms-ssim-rgb"] = list(res["ms-ssim"])
    return {
        "name": cfg.name,
        "description": cfg.description(),
        "meta": {
            **meta,
            "codec": cfg.codec,
            "depth": cfg.depth,
            "effort": cfg.effort,
            "settings": CLASSICAL_SETTINGS.get(cfg.codec, {"model_dir": cfg.model_dir}),
            "model_id": sorted({r["model_id"] for r in rows if "model_id" in r}),
            "images": len({r["image"] for r in rows}),
            "bpp": "8 * file bytes / pixels (header included)",
            "psnr": "mean over images of per-image RGB PSNR on uint8 reconstructions",
        },
        "results": dict(res),
    }


def load_anchors(anchors_dir: Path | None, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if anchors_dir is None or not anchors_dir.is_dir():
        return out
    for n in names:
        p = anchors_dir / n
        if p.is_file():
            out[Path(n).stem] = json.loads(p.read_text())
    return out


def _curve(d: dict[str, Any], metric: str) -> tuple[list[float], list[float]] | None:
    res = d["results"]
    if metric == "psnr":
        y = res.get("psnr-rgb", res.get("psnr"))
    else:
        y = res.get("ms-ssim-rgb", res.get("ms-ssim"))
        y = msssim_db(y) if y is not None else None
    if y is None or "bpp" not in res:
        return None
    return list(res["bpp"]), list(y)


def bd_table(
    tests: dict[str, dict[str, Any]], refs: dict[str, dict[str, Any]], metric: str = "psnr"
) -> dict[str, dict[str, float]]:
    """``table[test][ref]`` = BD-rate (%) of test vs ref; negative = test needs fewer bits."""
    table: dict[str, dict[str, float]] = {}
    for tn, td in tests.items():
        row = {}
        ct = _curve(td, metric)
        for rn, rd in refs.items():
            cr = _curve(rd, metric)
            row[rn] = math.nan if tn == rn or ct is None or cr is None else bd_rate(*cr, *ct)
        table[tn] = row
    return table


def overlap_table(
    tests: dict[str, dict[str, Any]], refs: dict[str, dict[str, Any]], metric: str = "psnr"
) -> dict[str, dict[str, float]]:
    """``table[test][ref]`` = width (dB) of the quality range both curves cover: what BD-rate integrates."""
    table: dict[str, dict[str, float]] = {}
    for tn, td in tests.items():
        ct = _curve(td, metric)
        row = {}
        for rn, rd in refs.items():
            cr = _curve(rd, metric)
            if ct is None or cr is None:
                row[rn] = 0.0
                continue
            a = [y for y in ct[1] if math.isfinite(y)]
            b = [y for y in cr[1] if math.isfinite(y)]
            row[rn] = max(0.0, min(max(a), max(b)) - max(min(a), min(b))) if a and b else 0.0
        table[tn] = row
    return table


# --------------------------------------------------------------------------- reports

# BD-rates integrated over less than this much shared quality are mostly extrapolation: flagged
MIN_OVERLAP_DB = 1.0


def _fmt_pct(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:+.1f}%"


def markdown_bd(
    table: dict[str, dict[str, float]], title: str, overlap: dict[str, dict[str, float]] | None = None
) -> str:
    cols = list(next(iter(table.values())).keys()) if table else []
    if len(table) < 2 and not any(c not in table for c in cols):
        return ""  # nothing to compare
    lines = [f"**{title}** (row vs column; negative = row needs fewer bits at equal quality)", ""]
    lines.append("| | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for rn, row in table.items():
        cells = []
        for c in cols:
            flag = overlap is not None and math.isfinite(row[c]) and overlap[rn][c] < MIN_OVERLAP_DB
            cells.append("—" if rn == c else _fmt_pct(row[c]) + (" †" if flag else ""))
        lines.append(f"| {rn} | " + " | ".join(cells) + " |")
    if overlap is not None:
        lines += ["", f"† the curves share less than {MIN_OVERLAP_DB:g} dB of quality: mostly extrapolation."]
    return "\n".join(lines) + "\n"


def markdown_rd(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| config | quality | bpp | PSNR-RGB (dB) | MS-SSIM | enc (s) | dec (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, d in results.items():
        r = d["results"]
        for i in range(len(r["bpp"])):
            lines.append(
                f"| {name} | {r['quality'][i]:g} | {r['bpp'][i]:.3f} | {r['psnr-rgb'][i]:.2f} | "
                f"{r['ms-ssim'][i]:.4f} | {r['encoding_time'][i]:.3f} | {r['decoding_time'][i]:.3f} |"
            )
    return "\n".join(lines) + "\n"


def plot_rd(results: dict[str, dict[str, Any]], anchors: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless; never opens a window
    import matplotlib.pyplot as plt

    xmax = 2.1
    # three visual families: anchors dashed and muted, classical codecs thin squares, nic bold circles
    anchor_colors = plt.get_cmap("Dark2").colors
    own_colors = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, 2, figsize=(17, 6), layout="constrained")
    for ax, metric, ylabel in ((axes[0], "psnr", "PSNR-RGB (dB)"), (axes[1], "msssim", "MS-SSIM (dB)")):
        ys: list[float] = []
        for i, (name, d) in enumerate(anchors.items()):
            c = _curve(d, metric)
            if c:
                ax.plot(*c, "--", color=anchor_colors[i % 8], lw=1.1, alpha=0.75, label=f"{name} (anchor)")
                ys += [y for x, y in zip(*c, strict=True) if x <= xmax and math.isfinite(y)]
        for i, (name, d) in enumerate(results.items()):
            c = _curve(d, metric)
            if c:
                nic = name.startswith("nic")
                ax.plot(
                    *c,
                    "o-" if nic else "s-",
                    color=own_colors[i % 10],
                    ms=4 if nic else 3,
                    lw=1.8 if nic else 1.0,
                    label=name,
                )
                ys += [y for x, y in zip(*c, strict=True) if x <= xmax and math.isfinite(y)]
        if ys:  # frame what lies inside the bpp range; anchors may run far beyond it
            ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
        ax.set_xlabel("bpp (file size)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, xmax)
        ax.grid(True, alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- entry point


def run_eval(
    dataset_dir: str | Path,
    out_dir: str | Path,
    qualities: Sequence[int] | None = None,
    codecs: Sequence[str] = ("nic", "jpeg", "webp", "avif", "jxl"),
    nic_efforts: Sequence[str] = ("none",),
    depths: Sequence[int] = (1, 2),
    lanes: Sequence[str] = ("auto",),
    workers: int = 1,
    limit: int | None = None,
    anchors: str | Path | None = "auto",
    anchor_names: Sequence[str] = DEFAULT_ANCHORS,
    sweeps: dict[str, Sequence[float]] | None = None,
    model_dir: str | Path | None = None,
    progress: bool = True,
    threads: int = 1,
    resume: bool = False,
) -> dict[str, Any]:
    """Evaluate every configuration on every image of ``dataset_dir``; write reports to ``out_dir``.

    ``qualities`` are nic quality indices (None = all the encoder offers); ``sweeps``
    overrides the classical codecs' quality lists; ``model_dir`` evaluates another nic
    model folder (``nic-encoder.pt`` + ``nic.npz``) instead of the shipped ``models/``;
    ``threads`` is the torch thread count of every process (the caller's own included
    when ``workers <= 1``). Every (image, config) result is also saved under
    ``out_dir/parts/``; ``resume=True`` reuses those whose settings and model files match,
    so an interrupted long run (SGA) continues where it stopped. ``anchors="auto"`` uses ``bench/anchors/<dataset
    folder name>`` when it exists (so Kodak gets the paper and CompressAI curves, other
    folders none). Returns a dict with the aggregated curves, BD-rate tables and paths.
    """
    dataset_dir = Path(dataset_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = list_images(dataset_dir, limit)
    cfgs = build_configs(codecs, qualities, nic_efforts, depths, sweeps, str(model_dir) if model_dir else None,
                         lanes)
    if anchors == "auto":
        anchors_dir = ANCHORS_ROOT / dataset_dir.resolve().name
    else:
        anchors_dir = Path(anchors) if anchors else None
    anchor_data = load_anchors(anchors_dir, anchor_names)

    fingerprints = {m: _model_fingerprint(m) for m in {c.model_dir for c in cfgs if c.codec == "nic"}}
    rows: list[dict[str, Any]] = []
    tasks: list[tuple[str, Config]] = []
    parts: dict[tuple[str, str], Path] = {}
    for c in cfgs:
        key = _task_key(c, fingerprints.get(c.model_dir) if c.codec == "nic" else None)
        for p in images:
            part = _part_path(out, c, p, key)
            parts[(str(p), c.name)] = part
            if resume and part.is_file():
                rows.extend(json.loads(part.read_text()))
            else:
                tasks.append((str(p), c))

    def done(p: str, c: Config, r: list[dict[str, Any]]) -> None:
        rows.extend(r)
        part = parts[(p, c.name)]
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text(json.dumps(r) + "\n")

    bar = _progress(len(tasks), f"eval {dataset_dir.name}") if progress else None
    t_start = time.time()
    if workers <= 1:
        _set_threads(threads)
        for p, c in tasks:
            done(p, c, _run_one(p, c))
            if bar:
                bar.set_postfix_str(f"{c.name} {Path(p).stem}", refresh=False)
                bar.update()
    else:
        # spawn, not fork: the parent may already hold torch/OpenMP thread pools that a fork would break
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_set_threads, initargs=(threads,)
        ) as ex:
            futs = {ex.submit(_run_one, p, c): (p, c) for p, c in tasks}
            for f in as_completed(futs):
                done(*futs[f], f.result())
                if bar:
                    bar.update()
    if bar:
        bar.close()

    meta = {
        "dataset": dataset_dir.name,
        "dataset_dir": str(dataset_dir),
        "workers": workers,
        "resumed_tasks": len(images) * len(cfgs) - len(tasks),
        "host": platform.node(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": "times are wall seconds per image, measured while other work may share the CPU",
    }
    results: dict[str, dict[str, Any]] = {}
    for c in cfgs:
        crow = [r for r in rows if r["config"] == c.name]
        results[c.name] = aggregate(crow, c, meta)
        (out / f"{c.name}.json").write_text(json.dumps(results[c.name], indent=2) + "\n")
    rows.sort(key=lambda r: (r["config"], r["image"], r["quality"]))
    (out / "per_image.json").write_text(json.dumps(rows, indent=1) + "\n")

    # columns: classical codecs, then nic configs (e.g. SGA gain, depth cost), then the anchors
    classical = {n: d for n, d in results.items() if d["meta"]["codec"] != "nic"}
    nic = {n: d for n, d in results.items() if d["meta"]["codec"] == "nic"}
    refs = {**classical, **nic, **anchor_data}
    bd = {"psnr": bd_table(results, refs, "psnr"), "ms-ssim": bd_table(results, refs, "msssim")}
    overlap = {"psnr": overlap_table(results, refs, "psnr"), "ms-ssim": overlap_table(results, refs, "msssim")}
    bd["overlap_db"] = overlap
    (out / "bdrate.json").write_text(json.dumps(bd, indent=2) + "\n")

    title = f"{dataset_dir.name}: {len(images)} images"
    md = [
        f"### RD results, {title} ({meta['date']})",
        "",
        "bpp = real file size including headers; PSNR = mean of per-image RGB PSNR; "
        f"times = wall seconds per image ({workers} worker(s), {threads} thread(s) each).",
        "",
        markdown_rd(results),
        "",
        markdown_bd(bd["psnr"], "BD-rate, PSNR-RGB", overlap["psnr"]),
        "",
        markdown_bd(bd["ms-ssim"], "BD-rate, MS-SSIM (dB)", overlap["ms-ssim"]),
    ]
    if anchor_data:
        shown = os.path.relpath(anchors_dir, Path(__file__).resolve().parents[1])  # the checkout's, not this machine's
        md += ["", f"Anchors from `{shown}`: " + ", ".join(f"`{n}`" for n in anchor_data) + "."]
        if any(n.startswith("paper-shallow-ntc") for n in anchor_data):
            md += ["", "Note: the paper-shallow-ntc anchors report estimated code length, not file sizes."]
        if limit:
            # anchors average the whole dataset; a subset is not a like-for-like comparison
            md += [
                "",
                f"**Warning:** only {len(images)} images (--limit); anchor BD-rates are not like-for-like.",
            ]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    plot_rd(results, anchor_data, out / "rd.png", title)

    return {
        "results": results,
        "bd_rate": bd,
        "anchors": list(anchor_data),
        "images": [p.name for p in images],
        "out_dir": str(out),
        "files": sorted(str(p) for p in out.iterdir()),
        "elapsed_s": time.time() - t_start,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``nic eval`` / ``python -m bench.rd`` (shared so both stay in sync)."""
    # dest names match encoder/cli.py's original `nic eval DATASET -o OUTPUT`
    p.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="folder of images (e.g. ../shared/data/kodak)")
    p.add_argument(
        "-o",
        "--output",
        "--out",
        dest="output",
        type=Path,
        default=None,
        help="output folder (default runs/eval/<dataset folder name>)",
    )
    p.add_argument("--codecs", nargs="+", default=["nic", *CLASSICAL], choices=["nic", *CLASSICAL])
    p.add_argument("--qualities", nargs="+", type=int, default=None, help="nic qualities (default: all)")
    p.add_argument(
        "--effort",
        "--efforts",
        dest="efforts",
        nargs="+",
        default=["none"],
        choices=NIC_EVAL_EFFORTS,
        help="nic encoder presets to evaluate (SGA efforts are slow on CPU); <preset>-nearest: without the "
        "rate-distortion optimised rounding",
    )
    p.add_argument("--depths", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    p.add_argument("--lanes", nargs="+", default=["auto"], choices=["auto", "compact"],
                   help="nic rANS lane policies to evaluate (compact: the fewest lanes, for browser-only decoding)")
    p.add_argument("--workers", type=int, default=1, help="processes, parallel across images")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--anchors", default="auto", help="anchor folder, 'auto' (by dataset name) or 'none'")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--model-dir", default=None, help="nic model folder (default: the shipped models/)")
    p.add_argument("--resume", action="store_true", help="reuse finished (image, config) results in OUTPUT/parts")


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    out = args.output or Path("runs/eval") / Path(args.dataset).resolve().name
    res = run_eval(
        args.dataset,
        out,
        qualities=args.qualities,
        codecs=args.codecs,
        nic_efforts=args.efforts,
        depths=args.depths,
        lanes=tuple(getattr(args, "lanes", ["auto"])),
        workers=args.workers,
        limit=args.limit,
        anchors=None if args.anchors == "none" else args.anchors,
        threads=args.threads,
        model_dir=args.model_dir,
        resume=getattr(args, "resume", False),
    )
    print((Path(res["out_dir"]) / "summary.md").read_text())
    print(f"wrote {res['out_dir']} in {res['elapsed_s']:.0f} s")
    return res


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rd", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    run_from_args(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
