"""`python -m nic_site [FOLDER] [--port 8000] [--host 127.0.0.1]`: same as `nic serve`."""

from __future__ import annotations

import argparse

from . import serve


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m nic_site",
                                 description="Serve the nic gallery and latency pages.")
    ap.add_argument("folder", nargs="?", help="images and/or .nic files (default: the Kodak samples)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default: local only)")
    args = ap.parse_args(argv)
    serve(args.folder, port=args.port, host=args.host)


if __name__ == "__main__":
    main()
