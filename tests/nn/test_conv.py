"""BayesConv: the grouped pass over S draws equals S separate convolutions; estimators; KL."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from varbayes.nn import BayesConv, draws, fold, unfold
from varbayes.priors import GaussianPrior

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
def test_grouped_draws_equal_one_convolution_per_draw(dims: int, groups: int) -> None:
    layer = BayesConv(dims, 4, 6, 3, stride=1, padding=1, groups=groups, init_rho=-1.0,
                      generator=torch.Generator().manual_seed(0)).double().eval()
    x = torch.randn(5, 4, *(6,) * dims, dtype=torch.float64)
    num = 3
    out = layer.forward_kl(x.expand(num, *x.shape), kl=None,
                           generator=torch.Generator().manual_seed(7))[0]
    g = torch.Generator().manual_seed(7)
    eps_w = torch.randn((num, *layer.weight_loc.shape), generator=g, dtype=torch.float64)
    eps_b = torch.randn((num, 6), generator=g, dtype=torch.float64)
    for s in range(num):
        w = layer.weight_loc + layer.weight_scale * eps_w[s]
        b = layer.bias_loc + layer.bias_scale * eps_b[s]
        ref = CONV[dims](x, w, b, 1, 1, 1, groups)
        torch.testing.assert_close(out[s], ref)
    # the folded form (what a converted network sees) gives the same numbers
    with draws(layer, num, generator=torch.Generator().manual_seed(7)):
        folded = layer(fold(x, num))
    torch.testing.assert_close(unfold(folded, num), out)


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
def test_estimators_have_the_mean_of_the_mean_convolution(estimator: str) -> None:
    layer = BayesConv(2, 2, 3, 3, padding="same", estimator=estimator, init_rho=-3.0,
                      generator=torch.Generator().manual_seed(0)).double()
    x = torch.randn(4, 2, 5, 5, dtype=torch.float64)
    mean = F.conv2d(x, layer.weight_loc, layer.bias_loc, padding="same")
    num = 4000
    with torch.no_grad(), draws(layer, num, generator=torch.Generator().manual_seed(1)):
        out = unfold(layer(fold(x, num)), num)
    assert out.shape == (num, 4, 3, 5, 5)
    assert (out.mean(0) - mean).abs().max() < 0.02
    assert out.std(0).min() > 0


def test_kl_is_the_closed_form_and_unbatched_input_works() -> None:
    layer = BayesConv(1, 2, 3, 2, prior=GaussianPrior(0.0, 0.5))
    expected = sum(kl_divergence(Normal(m, s), Normal(0.0, 0.5)).sum() for m, s in (
        (layer.weight_loc, layer.weight_scale), (layer.bias_loc, layer.bias_scale)))
    torch.testing.assert_close(layer.kl_divergence(), expected)
    assert layer(torch.randn(2, 7)).shape == (3, 6)
    out, kl = layer.forward_kl(torch.randn(4, 2, 7))
    assert out.shape == (4, 3, 6) and kl is not None
    with pytest.raises(ValueError, match="closed-form"):
        layer.forward_kl(torch.randn(4, 2, 7), kl="mc")
    with pytest.raises(ValueError, match="expected inputs"):
        layer(torch.randn(4, 5, 7))
