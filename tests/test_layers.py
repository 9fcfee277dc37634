"""The encoder's torch layers: the fold form of a transposed conv is the same function as PyTorch's."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from encoder.layers import BlockDeconv, deconv  # noqa: E402


@pytest.mark.parametrize("cin, cout, k, s", [(192, 3, 18, 16), (8, 4, 13, 8), (6, 3, 5, 2), (4, 2, 16, 16)])
def test_block_deconv_matches_the_transposed_conv_and_its_gradients(cin, cout, k, s):
    torch.manual_seed(0)
    ref, fold = deconv(cin, cout, k, s), BlockDeconv(cin, cout, k, s)
    fold.load_state_dict(ref.state_dict())  # same parameters, same names: checkpoints load either way
    x = torch.randn(2, cin, 5, 7, requires_grad=True)
    want, got = ref(x), fold(x)
    assert got.shape == want.shape == (2, cout, 5 * s, 7 * s)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g_ref, g_fold in zip(torch.autograd.grad(want.square().sum(), [x, ref.weight, ref.bias]),
                             torch.autograd.grad(got.square().sum(), [x, fold.weight, fold.bias]), strict=True):
        torch.testing.assert_close(g_fold, g_ref, rtol=1e-4, atol=1e-3)


def test_two_layer_synthesis_fuses_up_and_res_without_changing_its_output():
    from encoder.model import TwoLayerSynthesis

    torch.manual_seed(0)
    m = TwoLayerSynthesis(24, 6)
    y = torch.randn(2, 24, 3, 5)
    torch.testing.assert_close(m(y), m.out(m.igdn(m.up(y)) + m.res(y)), rtol=1e-6, atol=1e-6)
