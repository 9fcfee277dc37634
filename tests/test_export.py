"""`nic export`: a new decoder file replaces models/nic.npz and the replaced one is kept in models/legacy/."""

from __future__ import annotations

import lzma

import pytest

import webdecoder
from webdecoder import NicError
from webdecoder import model as model_module

SHIPPED = model_module.SHIPPED_DIR / "nic.npz"


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
    legacy = tmp_path / "models" / "legacy" / f"nic-{ids[0]}.npz.xz"
    assert legacy.is_file()
    assert sorted(p.name for p in legacy.parent.iterdir()) == [legacy.name]  # no .part file, no plain copy
    assert legacy.stat().st_size < 0.8 * (tmp_path / "models" / "nic.npz").stat().st_size
    assert webdecoder.register_model(model_module.read_model_file(legacy)) == ids[0]
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


def test_retire_replaces_an_uncompressed_legacy_copy_and_is_repeatable(tmp_path):
    """Checkouts from before retired files were compressed hold legacy/nic-<id>.npz: retiring it again
    leaves only the .npz.xz, byte-identical on a second run, whose inflated bytes keep the id."""
    pytest.importorskip("torch")
    from encoder.export import retire

    data = SHIPPED.read_bytes()
    plain = tmp_path / f"nic-{model_module.model_id_of(data).hex()}.npz"
    plain.write_bytes(data)
    first = retire(data, tmp_path).read_bytes()
    (tmp_path / (plain.name + ".xz")).unlink()
    assert retire(data, tmp_path).read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == [plain.name + ".xz"]
    assert model_module.read_model_file(tmp_path / (plain.name + ".xz")) == data


@pytest.mark.parametrize("damage, message", [
    (lambda xz: xz[: len(xz) // 2], "truncated"),
    (lambda xz: b"not xz at all" + xz, "not valid xz"),
])
def test_a_damaged_retired_model_file_is_a_clear_error(tmp_path, damage, message):
    data = SHIPPED.read_bytes()
    path = tmp_path / "nic-0000000000000000.npz.xz"
    path.write_bytes(damage(lzma.compress(data, format=lzma.FORMAT_XZ)))
    with pytest.raises(NicError, match=message):
        model_module.read_model_file(path)


def test_a_retired_model_file_inflating_past_the_cap_is_refused(tmp_path, monkeypatch):
    """An xz bomb stops at MAX_MODEL_BYTES instead of allocating what it claims."""
    path = tmp_path / "nic-0000000000000000.npz.xz"
    path.write_bytes(lzma.compress(bytes(1 << 20), format=lzma.FORMAT_XZ))
    monkeypatch.setattr(model_module, "MAX_MODEL_BYTES", 1 << 16)
    with pytest.raises(NicError, match="over 65536 bytes"):
        model_module.read_model_file(path)
