"""The ``nic`` command: encode, decode, info, serve, train, export, eval.

The only module that touches argv and files. Errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".avif"}


class CliError(Exception):
    pass


def collect_inputs(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(source, path relative to the output root) for files and folders (recursively)."""
    jobs = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    jobs.append((f, f.relative_to(p).with_suffix(".nic")))
        elif p.is_file():
            jobs.append((p, Path(p.name).with_suffix(".nic")))
        else:
            raise CliError(f"{item}: no such file or folder")
    return jobs


def cmd_encode(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from encoder.batch import (
        Settings,
        clean_stale_parts,
        encode_file,
        is_current,
        load_manifest,
        save_manifest,
        sha256_file,
    )
    from encoder.codec import default_encoder
    from encoder.image import ImageError

    jobs = collect_inputs(args.inputs)
    if not jobs:
        raise CliError("no input images")
    out = Path(args.output)
    single_file = len(jobs) == 1 and Path(args.inputs[0]).is_file() and out.suffix == ".nic"
    depth = args.depth or ("auto" if args.max_kmac is not None else "2")
    settings = Settings(args.quality, depth if depth == "auto" else int(depth), args.effort, args.sga_steps,
                        args.max_kmac, args.complexity_weight, args.fallback, args.lanes)
    # Temporaries of an earlier, killed run never look like outputs (dot names, .part), but are removed here.
    clean_stale_parts(out.parent if single_file else out)
    enc = default_encoder()
    if single_file:
        entry = encode_file(enc, jobs[0][0], out.name, out.parent, settings, progress=not args.quiet)
        if not args.quiet:
            print(f"{out}: {entry['bytes']} bytes, {entry['bpp']:.4f} bpp, depth {entry['depth']}, "
                  f"{entry['kmac_per_px']:.3f} kMAC/px")
        return 0
    if args.distributed:
        from encoder.distributed import encode_distributed

        return encode_distributed(jobs, out, settings, args.distributed, force=args.force, quiet=args.quiet)
    manifest = load_manifest(out)
    model_id = enc.int_model.model_id.hex()
    failures = skipped = 0
    for src, rel in tqdm(jobs, desc="encode", unit="img", disable=args.quiet):
        key = str(rel)
        if not args.force and is_current(manifest.get(key), sha256_file(src), settings, model_id, out):
            skipped += 1
            continue
        try:
            manifest[key] = encode_file(enc, src, key, out, settings)
        except (ImageError, ValueError) as e:
            print(f"nic: {e}", file=sys.stderr)  # report and go on with the rest of the folder
            failures += 1
            continue
        save_manifest(out, manifest)
    if not args.quiet:
        print(f"{len(jobs) - failures - skipped} encoded, {skipped} up to date, {failures} failed; "
              f"manifest: {out / 'manifest.json'}")
    return 1 if failures else 0


def cmd_decode(args: argparse.Namespace) -> int:
    from PIL import Image

    import webdecoder

    data = Path(args.input).read_bytes()
    rgb = webdecoder.decode(data)
    import io

    buf = io.BytesIO()
    fmt = Image.registered_extensions().get(Path(args.output).suffix.lower(), "PNG")
    Image.fromarray(rgb).save(buf, format=fmt)
    from encoder.batch import write_atomic

    write_atomic(Path(args.output), buf.getvalue())
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import webdecoder

    for path in args.inputs:
        i = webdecoder.info(Path(path).read_bytes())
        print(f"{path}: {i['width']}x{i['height']}, {i['bytes']} bytes, {i['bpp']:.4f} bpp, quality {i['quality']}, "
              f"depth {i['depth']}, decode cost {i['kmac_per_px']:.3f} kMAC/px ({i['total_mac'] / 1e6:.1f} M MAC), "
              f"model {i['model_id']}, lanes z/y {i['z_lanes']}/{i['y_lanes']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from nic_site import serve

    serve(args.folder, port=args.port, host=args.host)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from encoder.train import train

    train(args.config, max_minutes=args.max_minutes)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from encoder.export import export

    print(export(args.checkpoint, args.output))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bench.rd import run_from_args

    run_from_args(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nic", description="Neural image codec with a shallow, in-browser decoder.")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("encode", help="encode images or folders to .nic")
    e.add_argument("inputs", nargs="+", help="image files or folders")
    e.add_argument("-o", "--output", required=True, help="output .nic file (one input) or folder")
    e.add_argument("-q", "--quality", type=int, default=4, help="quality 0 (smallest) .. 7 (best), default 4")
    e.add_argument("--depth", choices=("1", "2", "auto"), default=None,
                   help="synthesis depth: 1 JPEG-like, 2 two-layer (default), auto = best by rate, distortion and "
                   "decode cost (the default when --max-kmac is given)")
    e.add_argument("--max-kmac", type=float, default=None, help="cap on the decode cost in kMAC/px")
    e.add_argument("--complexity-weight", type=float, default=0.02,
                   help="bpp one pays per kMAC/px of decode cost when --depth auto (default 0.02)")
    e.add_argument("--effort", choices=("none", "light", "fast", "default", "best"), default="fast",
                   help="encoder preset: SGA steps none 0, light 0, fast 100, default 300, best 1000; every "
                   "preset but none then optimises the latents' rounding for rate and distortion (a few seconds "
                   "per Kodak image)")
    e.add_argument("--sga-steps", type=int, default=None,
                   help="SGA steps (overrides the preset's; the rounding stays the preset's)")
    e.add_argument("--lanes", choices=("auto", "compact"), default="auto",
                   help="rANS lanes of the y stream: auto (fast in CPython and browsers) or compact (the fewest the "
                   "format allows: 1-3%% smaller files that browsers decode as fast, CPython's NumPy decoder slower)")
    e.add_argument("--fallback", choices=("webp", "jpeg"), default=None,
                   help="also write a WebP/JPEG beside each .nic for browsers without WebAssembly")
    e.add_argument("--distributed", metavar="SCHEDULER", default=None,
                   help="run a folder encode on a Dask cluster: 'local:N' (N local workers) or a scheduler address")
    e.add_argument("-f", "--force", action="store_true", help="re-encode outputs the manifest says are up to date")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_encode)

    d = sub.add_parser("decode", help="decode a .nic file to PNG (or any format Pillow writes)")
    d.add_argument("input")
    d.add_argument("-o", "--output", required=True)
    d.set_defaults(func=cmd_decode)

    i = sub.add_parser("info", help="size, bpp, quality, depth and decode cost of .nic files")
    i.add_argument("inputs", nargs="+")
    i.set_defaults(func=cmd_info)

    s = sub.add_parser("serve", help="serve the gallery / latency site for a folder of images")
    s.add_argument("folder", nargs="?", default=None)
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--host", default="127.0.0.1")
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("train", help="train (or resume) a model from a TOML config")
    t.add_argument("config")
    t.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this long")
    t.set_defaults(func=cmd_train)

    x = sub.add_parser("export", help="export a checkpoint to models/ (integer decoder file + encoder weights)")
    x.add_argument("checkpoint")
    x.add_argument("-o", "--output", default="models")
    x.set_defaults(func=cmd_export)

    v = sub.add_parser("eval", help="rate-distortion evaluation against JPEG, WebP, AVIF, JPEG XL")
    from bench.rd import add_arguments

    add_arguments(v)
    v.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one clear line, no traceback, for every failure a user can cause
        from webdecoder import NicError

        if isinstance(e, (NicError, CliError, OSError, ValueError)):
            print(f"nic: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
