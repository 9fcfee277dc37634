"""`nic train`: a tiny model on a few real crops, resumed from its checkpoint, in float32 and in bfloat16."""

import json
from pathlib import Path

from PIL import Image
import pytest
import torch

from encoder.train import rd_loss, train

TINY_MODEL = """
[model]
analysis_channels = 16
latent_channels = 16
hyper_channels = 8
z_channels = 8
two_hidden = 2
lambdas = [0.0035, 0.0125]
"""


def _config(tmp_path, data, precision: str, total: int, run: str | None = None, extra: str = "") -> str:
    run = run or precision
    cfg = tmp_path / f"train-{run}.toml"
    cfg.write_text(TINY_MODEL + f"""
[train]
data = "{data}"
run_dir = "{tmp_path / run}"
crop = 64
batch = 2
total_steps = {total}
lr = 1e-3
warmup_steps = 1
threads = 1
precision = "{precision}"
checkpoint_minutes = 100
{extra}
""")
    return str(cfg)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, kodak):
    d = tmp_path_factory.mktemp("photos")
    for i, p in enumerate(kodak[:3]):
        Image.open(p).convert("RGB").crop((0, 0, 96, 80)).save(d / f"p{i}.png")
    (d / "notes.txt").write_text("not an image: skipped")
    return d


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_checkpoints_and_resumes(tmp_path, photos, precision, monkeypatch):
    import encoder.train

    seen = []

    def recording_rd_loss(*args):  # what precision each training step's forward pass ran in
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return rd_loss(*args)

    monkeypatch.setattr(encoder.train, "rd_loss", recording_rd_loss)
    ckpt = train(_config(tmp_path, photos, precision, 3))
    assert seen == [torch.bfloat16 if precision == "bf16" else False] * 3
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["step"] == 3 and state["config"]["latent_channels"] == 16
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())  # master weights
    before = {k: v.clone() for k, v in state["model"].items()}
    ckpt = train(_config(tmp_path, photos, precision, 5))  # a longer run continues from step 3
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["step"] == 5
    assert any(not torch.equal(before[k], v) for k, v in state["model"].items())  # it trained
    log = (tmp_path / precision / "train.log").read_text()
    assert "resumed at step 3" in log and f"precision {precision}" in log
    assert json.loads((tmp_path / precision / "config.json").read_text())["train"]["precision"] == precision


def test_train_rejects_an_unknown_precision(tmp_path, photos):
    with pytest.raises(ValueError, match="precision must be fp32, bf16 or auto"):
        train(_config(tmp_path, photos, "fp8", 1))


def test_auto_precision_follows_the_cpus_bf16_support(monkeypatch):
    from encoder.train import resolve_precision

    for avx512_bf16, amx, want in [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert resolve_precision("auto") == want
    assert resolve_precision("bf16") == "bf16" and resolve_precision("fp32") == "fp32"  # explicit wins


def test_train_starts_from_exported_weights(tmp_path, photos):
    """A run whose checkpoint is gone starts from the committed export: its weights, its step count."""
    from encoder.export import export

    ckpt = train(_config(tmp_path, photos, "fp32", 3))
    export(ckpt, tmp_path / "models")
    exported = torch.load(tmp_path / "models" / "nic-encoder.pt", map_location="cpu", weights_only=False)
    init = f'init_from = "{tmp_path / "models" / "nic-encoder.pt"}"'
    cfg = Path(_config(tmp_path, photos, "fp32", 3, run="again", extra=init))
    state = torch.load(train(cfg), map_location="cpu", weights_only=False)
    assert state["step"] == 3  # the export's own count: nothing left to train
    for k, v in state["model"].items():  # the float16 export, widened back to float32 master weights
        assert torch.equal(v, exported["model"][k].float() if v.is_floating_point() else exported["model"][k])
    assert "initialised from" in (tmp_path / "again" / "train.log").read_text()

    cfg.write_text(cfg.read_text().replace("latent_channels = 16", "latent_channels = 24")
                   .replace(str(tmp_path / "again"), str(tmp_path / "other")))
    with pytest.raises(ValueError, match="init_from: .* holds a model of config"):
        train(cfg)


def test_fixed_crop_loss_is_repeatable_and_tells_models_apart(tmp_path, photos):
    from bench.fixed_crop_loss import fixed_crop_loss, load
    from encoder.train import CropDataset

    first = train(_config(tmp_path, photos, "fp32", 1))
    state = torch.load(first, map_location="cpu", weights_only=False)
    torch.save(state, tmp_path / "step1.pt")
    later = train(_config(tmp_path, photos, "fp32", 4))
    data = CropDataset(photos, 64, seed=1)
    batches = [data.batch(2) for _ in range(2)]
    a, b = (fixed_crop_loss(load(p)[0], batches) for p in (tmp_path / "step1.pt", later))
    assert fixed_crop_loss(load(later)[0], batches) == b  # same crops, same noise: the same figures
    assert a["loss"] != b["loss"] and set(a) == {"loss", "bpp", "psnr_jpeg", "psnr_two"}


def test_a_non_finite_step_is_skipped_not_applied(tmp_path, photos, monkeypatch):
    """A NaN batch leaves the weights and the checkpoint finite; a run that only makes NaNs stops unsaved."""
    import encoder.train

    calls = []

    def sometimes_nan(model, x, q):
        loss, stats = rd_loss(model, x, q)
        calls.append(1)
        return (loss * float("nan"), stats) if len(calls) == 2 else (loss, stats)

    monkeypatch.setattr(encoder.train, "rd_loss", sometimes_nan)
    state = torch.load(train(_config(tmp_path, photos, "fp32", 3)), map_location="cpu", weights_only=False)
    assert state["step"] == 3 and len(calls) == 4  # three updates, one batch skipped
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert "update skipped (1 in a row)" in (tmp_path / "fp32" / "train.log").read_text()

    monkeypatch.setattr(encoder.train, "rd_loss", lambda m, x, q: (rd_loss(m, x, q)[0] * float("nan"), {}))
    before = (tmp_path / "fp32" / "last.pt").read_bytes()
    with pytest.raises(RuntimeError, match="20 training steps in a row"):
        train(_config(tmp_path, photos, "fp32", 5))
    assert (tmp_path / "fp32" / "last.pt").read_bytes() == before
