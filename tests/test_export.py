"""`nic export`: a new decoder file replaces models/nic.npz and the replaced one is kept in models/legacy/."""

from __future__ import annotations

import pytest

import webdecoder


def test_export_retires_the_replaced_decoder_to_legacy(tmp_path):
    torch = pytest.importorskip("torch")
    from encoder.export import export
    from encoder.model import ModelConfig, NicModel

    cfg = ModelConfig()
    ids = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = NicModel(cfg)
        torch.save({"model": model.state_dict(), "config": cfg.__dict__, "step": 1}, tmp_path / "ckpt.pt")
        ids.append(export(tmp_path / "ckpt.pt", tmp_path / "models"))
    assert ids[0] != ids[1]
    legacy = tmp_path / "models" / "legacy" / f"nic-{ids[0]}.npz"
    assert legacy.is_file()
    assert webdecoder.register_model(legacy.read_bytes()) == ids[0]
    assert webdecoder.register_model((tmp_path / "models" / "nic.npz").read_bytes()) == ids[1]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["legacy", "nic-encoder.pt", "nic.npz"]


def test_export_puts_the_latent_facing_layers_in_int16_range(tmp_path):
    """The latent enters the synthesis at 8 fraction bits through weights below 2^12, so the browser's int16
    kernel takes the largest products in one pass (webdecoder/conv.py ``_int16_parts``); the other layers keep
    14-bit weights, and every stored shift rounds (>= 1)."""
    torch = pytest.importorskip("torch")
    from encoder.export import export
    from encoder.model import ModelConfig, NicModel
    from webdecoder.model import load_model
    from webdecoder.synthesis import input_frac_bits

    cfg = ModelConfig()
    torch.manual_seed(0)
    torch.save({"model": NicModel(cfg).state_dict(), "config": cfg.__dict__, "step": 1}, tmp_path / "ckpt.pt")
    export(tmp_path / "ckpt.pt", tmp_path / "models")
    model = load_model((tmp_path / "models" / "nic.npz").read_bytes())
    assert input_frac_bits(model) == 8
    for name in ("jpeg", "two.up", "two.res"):
        assert 1 << 11 <= abs(model[f"{name}.w"]).max() < 1 << 12, name
    for name in ("two.out", "h0", "h1", "h2"):
        assert 1 << 13 <= abs(model[f"{name}.w"]).max() < 1 << 14, name
    assert min(model.int(k) for k in model.arrays if k.endswith(".shift")) >= 1
