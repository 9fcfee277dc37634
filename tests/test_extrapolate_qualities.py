"""scripts/extrapolate_qualities.py: extra levels continue the log-gains and lambdas; the old ones stay."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_spec = importlib.util.spec_from_file_location(
    "extrapolate_qualities", Path(__file__).parent.parent / "scripts" / "extrapolate_qualities.py")
extrapolate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(extrapolate)


def test_extend_prepends_linear_log_gains_and_geometric_lambdas():
    lg = torch.tensor([[-1.0, -2.0], [-0.5, -1.5], [0.0, -1.0]], dtype=torch.float16)
    state = {"model": {"log_gain": lg, "step": torch.tensor(3)}, "config": {"lambdas": [0.001, 0.002, 0.004]}}
    out = extrapolate.extend(state, 2)
    got = out["model"]["log_gain"]
    assert got.dtype == torch.float32 and got.shape == (5, 2)
    torch.testing.assert_close(got, torch.tensor([[-2.0, -3.0], [-1.5, -2.5], [-1.0, -2.0], [-0.5, -1.5],
                                                  [0.0, -1.0]]))
    assert out["config"]["lambdas"] == [0.00025, 0.0005, 0.001, 0.002, 0.004]
    assert out["model"]["step"].dtype == torch.int64  # non-float entries untouched
    assert state["config"]["lambdas"] == [0.001, 0.002, 0.004]  # the input is left alone
