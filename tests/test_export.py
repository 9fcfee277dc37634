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
