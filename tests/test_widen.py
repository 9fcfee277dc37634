"""A widened checkpoint computes what the old one did on the old channels, and decodes the same pictures."""

from __future__ import annotations

import pytest
import torch

from encoder.model import LOG_SCALE_MIN, ModelConfig, NicModel
from encoder.widen import widen_checkpoint, widen_state

OLD = ModelConfig(analysis_channels=8, latent_channels=8, hyper_channels=6, z_channels=4, two_hidden=2,
                  lambdas=[0.01, 0.05])
NEW = ModelConfig(**{**OLD.__dict__, "latent_channels": 12})


@pytest.fixture
def pair() -> tuple[NicModel, NicModel]:
    torch.manual_seed(1)
    old = NicModel(OLD).eval()
    with torch.no_grad():  # non-trivial h_s output rows, so a swapped (mu, log_sigma) layout would show
        for p in old.h_s.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    new = NicModel(NEW).eval()
    new.load_state_dict(widen_state(old.state_dict(), OLD, NEW))
    return old, new


def test_old_channels_compute_what_they_did(pair):
    old, new = pair
    x, q = torch.rand(2, 3, 64, 64), torch.tensor([0, 1])
    with torch.no_grad():
        y_old, z_old = old.analyse(x, q)
        y_new, z_new = new.analyse(x, q)
        # same sums plus exact zeros (a wider conv may sum in another order: allclose, not equal)
        assert torch.allclose(y_new[:, :8], y_old, atol=1e-5)
        assert torch.allclose(z_new, z_old, atol=1e-5)
        z_hat = torch.round(z_old)
        mu_old, ls_old = old.h_s(z_hat)
        mu_new, ls_new = new.h_s(z_hat)
        assert torch.allclose(mu_new[:, :8], mu_old, atol=1e-6) and torch.allclose(ls_new[:, :8], ls_old, atol=1e-6)
        assert torch.all(mu_new[:, 8:] == 0) and torch.all(ls_new[:, 8:] == LOG_SCALE_MIN)
        assert y_new[:, 8:].abs().mean() < y_old.abs().mean()  # new channels start small


@pytest.mark.parametrize("depth", ["jpeg", "two"])
def test_pictures_unchanged_while_new_channels_round_to_zero(pair, depth):
    old, new = pair
    y_hat = torch.round(torch.randn(1, 8, 4, 4) * 3)
    padded = torch.cat([y_hat, torch.zeros(1, 4, 4, 4)], dim=1)
    q = torch.tensor([1])
    with torch.no_grad():
        assert torch.allclose(new.synthesise(padded, q, depth), old.synthesise(y_hat, q, depth), atol=1e-5)
    # ...but the new channels have a gradient: training can start using them
    padded.requires_grad_(True)
    new.synthesise(padded, q, depth).sum().backward()
    assert padded.grad[:, 8:].abs().sum() > 0


def test_checkpoint_round_trip(tmp_path, pair):
    old, _ = pair
    src, dst = tmp_path / "old.pt", tmp_path / "wide" / "last.pt"
    torch.save({"model": old.state_dict(), "opt": {}, "step": 123, "config": OLD.__dict__}, src)
    cfg = widen_checkpoint(src, dst, 12)
    state = torch.load(dst, weights_only=False)
    assert cfg.latent_channels == 12 and state["step"] == 123 and state["config"]["latent_channels"] == 12
    NicModel(cfg).load_state_dict(state["model"])
    with pytest.raises(ValueError, match="only grow"):
        widen_state(old.state_dict(), OLD, ModelConfig(**{**OLD.__dict__, "latent_channels": 4}))
