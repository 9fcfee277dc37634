"""Iterative encoding (SGA): the schedule fits the step budget, and refining lowers the real RD cost."""

from __future__ import annotations

import numpy as np
from PIL import Image
import pytest

from encoder import sga


def test_schedule_is_the_papers_compressed_to_the_budget():
    # 3000 steps: exactly the paper's min(0.5, 0.5 exp(-5e-4 (t - 200))).
    assert sga.temperature(0) == 0.5
    assert sga.temperature(200) == 0.5
    assert sga.temperature(3000) == pytest.approx(0.5 * np.exp(-5e-4 * 2800))
    # Shorter runs anneal too (the paper's curve would still be at 0.5 after 100 steps) and end alike.
    for steps in (100, 300, 1000):
        assert sga.temperature(0, steps) == 0.5
        assert sga.temperature(steps, steps) == pytest.approx(sga.temperature(3000))
        temps = [sga.temperature(t, steps) for t in range(steps + 1)]
        assert all(a >= b for a, b in zip(temps[:-1], temps[1:], strict=True))
    # The presets' slower decay ends warmer: 0.5 exp(-0.7) = 0.25 at any budget.
    for steps in (100, 300, 3000):
        assert sga.temperature(steps, steps, r=sga.DECAY) == pytest.approx(0.5 * np.exp(-sga.DECAY * 2800))
    assert sga.learning_rate(3000) == sga.learning_rate(10000) == 5e-3
    assert sga.learning_rate(100) > sga.learning_rate(300) > sga.learning_rate(1000) > 5e-3


@pytest.mark.parametrize("tau", [0.5, 0.12])
def test_sga_round_samples_the_papers_two_way_gumbel_softmax(tau):
    # sga_round draws one logistic sample instead of a Gumbel pair: same distribution, checked by its
    # mean and spread against torch's gumbel_softmax over the paper's two logits (200k draws each).
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    torch.manual_seed(0)
    x = torch.tensor([-1.9, 0.1, 0.3, 0.5, 0.7, 2.95]).repeat(200_000, 1)
    lo = torch.floor(x)
    d = (x - lo).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack([-torch.atanh(d) / tau, -torch.atanh(1 - d) / tau], dim=-1)
    want = lo + F.gumbel_softmax(logits, tau=tau, hard=False)[..., 1]
    got = sga.sga_round(x, tau)
    assert torch.all((got >= lo) & (got <= lo + 1))
    torch.testing.assert_close(got.mean(0), want.mean(0), atol=4e-3, rtol=0)
    torch.testing.assert_close(got.std(0), want.std(0), atol=4e-3, rtol=0)


@pytest.mark.parametrize("depth", [1, 2])
def test_sga_lowers_the_rd_cost_of_the_real_file(encoder, kodak, depth):
    rgb = np.asarray(Image.open(kodak[0]).convert("RGB"))[192:320, 256:448]
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    plain = encoder.rd_cost(encoder.encode(rgb, 3, depth, effort="none"), rgb, 3)
    refined = encoder.rd_cost(encoder.encode(rgb, 3, depth, effort="none", sga_steps=60), rgb, 3)  # SGA alone
    assert refined < 0.99 * plain, (refined, plain)
