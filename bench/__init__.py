"""Evaluation and benchmarking harness: RD curves, BD-rates, entropy-coder and decoder speed."""

import json
from pathlib import Path


def report(md: str, out: str | Path | None) -> None:
    """Print a benchmark's Markdown table and save it next to its JSON (ready for BENCHMARKS.md)."""
    print(md)
    if out:
        Path(out).with_suffix(".md").write_text(md)
        print(f"wrote {out} and {Path(out).with_suffix('.md')}")


def save_json(result: dict, out: str | Path | None) -> dict:
    """Write a benchmark's result as indented JSON (creating its folder); returns the result."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return result
