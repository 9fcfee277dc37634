"""What content servers and Pillow users reach for: plugin, folder manifest, fallbacks, Dask."""

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import webdecoder

ROOT = Path(__file__).resolve().parent.parent
NIC = [sys.executable, "-m", "encoder.cli"]


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, kodak) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for i, p in enumerate(kodak[:2]):
        Image.open(p).convert("RGB").crop((0, 0, 128, 96)).save(d / f"p{i}.png")
    (d / "sub").mkdir()
    Image.open(kodak[2]).convert("RGB").crop((0, 0, 64, 64)).save(d / "sub" / "p2.png")
    (d / "broken.png").write_bytes(b"not an image")
    return d


def test_pillow_opens_nic(small_files, tmp_path):
    import webdecoder.pillow  # noqa: F401  (registers the plugin)

    f = tmp_path / "x.nic"
    f.write_bytes(small_files[2])
    with Image.open(f) as im:
        assert im.format == "NIC" and im.size == (160, 96) and im.info["depth"] == 2
        assert np.array_equal(np.asarray(im), webdecoder.decode(small_files[2]))
        im.save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").size == (160, 96)


def run_nic(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NIC, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_folder_encode_manifest_fallback_and_resume(photo_dir, tmp_path):
    out = tmp_path / "out"
    r = run_nic("encode", str(photo_dir), "-o", str(out), "-q", "3", "--effort", "none", "--fallback", "webp",
                "--quiet")
    assert r.returncode == 1 and "broken.png" in r.stderr  # reported, the rest went on
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest) == ["p0.nic", "p1.nic", "sub/p2.nic"]
    for rel, e in manifest.items():
        data = (out / rel).read_bytes()
        assert e["bytes"] == len(data) and e["quality"] == 3
        assert e["kmac_per_px"] == webdecoder.info(data)["kmac_per_px"]
        assert (out / e["fallback"]).is_file() and Image.open(out / e["fallback"]).format == "WEBP"
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.nic")}
    r = run_nic("encode", str(photo_dir), "-o", str(out), "-q", "3", "--effort", "none", "--fallback", "webp")
    assert "0 encoded, 3 up to date" in r.stdout
    assert mtimes == {p: p.stat().st_mtime_ns for p in out.rglob("*.nic")}
    r = run_nic("encode", str(photo_dir), "-o", str(out), "-q", "4", "--effort", "none", "--fallback", "webp")
    assert "3 encoded, 0 up to date" in r.stdout  # settings changed: everything is redone
    assert not list(out.rglob("*.part"))
    # a manifest written before a setting existed (here: lanes) still counts as up to date at its default
    manifest = json.loads((out / "manifest.json").read_text())
    for e in manifest.values():
        del e["settings"]["lanes"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = run_nic("encode", str(photo_dir), "-o", str(out), "-q", "4", "--effort", "none", "--fallback", "webp")
    assert "0 encoded, 3 up to date" in r.stdout
    r = run_nic("encode", str(photo_dir), "-o", str(out), "-q", "4", "--effort", "none", "--fallback", "webp",
                "--lanes", "compact")
    assert "3 encoded, 0 up to date" in r.stdout
    assert all(webdecoder.info((out / rel).read_bytes())["y_lanes"] == 1 for rel in manifest)  # small photos


def test_distributed_encode_on_a_local_two_worker_cluster(photo_dir, tmp_path):
    out = tmp_path / "dist"
    r = run_nic("encode", str(photo_dir), "-o", str(out), "-q", "2", "--effort", "none",
                "--distributed", "local:2")
    assert r.returncode == 1 and "broken.png" in r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest) == ["p0.nic", "p1.nic", "sub/p2.nic"]
    local = tmp_path / "local"
    run_nic("encode", str(photo_dir), "-o", str(local), "-q", "2", "--effort", "none")
    for rel in manifest:  # the cluster writes exactly what a local encode writes
        assert (out / rel).read_bytes() == (local / rel).read_bytes()
    r = run_nic("encode", str(photo_dir), "-o", str(out), "-q", "2", "--effort", "none",
                "--distributed", "local:2")
    assert "0 encoded, 3 up to date" in r.stdout


def test_every_front_end_offers_exactly_the_encoders_lane_policies():
    """The CLI, `nic eval` and the site list the policies by hand (importing the encoder would load torch
    where only a name is needed), so this keeps them equal to encoder.codec.LANE_POLICIES."""
    import argparse

    import nic_site

    from bench.rd import add_arguments
    from encoder.cli import build_parser
    from encoder.codec import LANE_POLICIES

    def lanes_choices(parser: argparse.ArgumentParser) -> tuple:
        return tuple(next(a for a in parser._actions if a.dest == "lanes").choices)

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert lanes_choices(sub.choices["encode"]) == LANE_POLICIES
    rd = argparse.ArgumentParser()
    add_arguments(rd)
    assert lanes_choices(rd) == LANE_POLICIES
    assert nic_site.default_config()["ENCODE_LANES"] in LANE_POLICIES
    with pytest.raises(ValueError, match="ENCODE_LANES must be auto or compact"):
        nic_site.create_app({"ENCODE_LANES": "few"})
