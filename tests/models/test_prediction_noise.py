"""Sobol weight noise of a prediction pass (BayesianMLP.forward(noise=...)) and its default use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from varbayes import BayesianClassifier
from varbayes.kinds import fit, predict_family
from varbayes.models import BayesianMLP, FamilyMLP
from varbayes.nn.qmc import MAX_DIMS
from varbayes.predictive import family_predictive


def _net(in_features: int = 8, hidden: int = 16, rho: float = -1.5) -> FamilyMLP:
    net = FamilyMLP(in_features, (hidden,), likelihood="categorical", n_classes=3,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for layer in net.layers:
            layer.weight_rho.fill_(rho)
            layer.bias_rho.fill_(rho)
    return net.eval()


def test_sobol_draws_vary_less_between_seeds_than_independent_ones() -> None:
    """The variance of the predictive probabilities across 20 prediction seeds, 256 draws each.

    Averaged over 40 rows x 3 classes: on this network (posterior scale 0.2, 195 weights) the
    Sobol variance is 0.195x the independent one (log ratio -1.64, standard deviation 0.11 over
    40 blocks of other seeds). The bound 0.5 is 8.5 of those standard deviations away: a
    false-positive rate below 1e-15 (normal approximation of the log ratio); seeded.
    """
    net = _net()
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(1))

    def spread(noise: str) -> float:
        probs = torch.stack([family_predictive(net, x, 256, noise=noise,
                                               generator=torch.Generator().manual_seed(r)).probs
                             for r in range(20)])
        return float(probs.var(0).mean())

    assert spread("sobol") < 0.5 * spread("normal")


def test_sobol_draws_average_to_the_same_predictive() -> None:
    """Unbiased: 4096 Sobol draws against 65536 independent ones, max difference of a probability.

    Monte Carlo standard error of a probability here: at most about 0.5 / sqrt(65536) = 0.002
    for the independent average (the Sobol one is smaller); 0.02 is over 7 of them, a
    false-positive rate below 1e-10 per entry (120 entries); seeded.
    """
    net = _net(rho=-0.5)
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(2))
    qmc = family_predictive(net, x, 4096, noise="sobol", generator=torch.Generator().manual_seed(3))
    ref = family_predictive(net, x, 65536, generator=torch.Generator().manual_seed(4))
    assert float((qmc.probs - ref.probs).abs().max()) < 0.02


def test_more_weights_than_sobol_dimensions_draw_independent_normals() -> None:
    net = _net(in_features=MAX_DIMS // 100 + 1, hidden=100)  # over MAX_DIMS weights
    x = torch.randn(3, net.layers[0].in_features, generator=torch.Generator().manual_seed(0))
    a = family_predictive(net, x, 4, noise="sobol", generator=torch.Generator().manual_seed(1))
    b = family_predictive(net, x, 4, noise="normal", generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.logits, b.logits)


def test_sobol_noise_is_for_prediction_passes_only() -> None:
    net = BayesianMLP(3, (4,))
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="prediction pass"):
        net(x, 2, noise="sobol")  # training mode, autograd on
    with torch.no_grad(), pytest.raises(ValueError, match="noise must be one of"):
        net.eval()(x, 2, noise="halton")
    with torch.no_grad():
        assert net(x, 2, noise="sobol").loc.shape == (2, 5)


def test_classifiers_predict_with_normal_draws_unless_asked_and_other_families_too(
        tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] > 0).astype(int)
    plain = BayesianClassifier(epochs=5, num_samples=50, random_state=0).fit(x, y)
    quasi = BayesianClassifier(epochs=5, num_samples=50, random_state=0,
                               prediction_noise="sobol").fit(x, y)
    normal = predict_family(plain.model_, x[:4], 50, generator=plain._generator())
    sobol = predict_family(plain.model_, x[:4], 50, noise="sobol", generator=plain._generator())
    # rows padded to a row group by predict_proba: equal up to rounding
    assert np.allclose(plain.predict_proba(x[:4]), normal.probs.numpy(), rtol=0, atol=1e-12)
    assert np.allclose(quasi.predict_proba(x[:4]), sobol.probs.numpy(), rtol=0, atol=1e-12)
    assert not np.allclose(quasi.predict_proba(x[:4]), normal.probs.numpy(), rtol=0, atol=1e-4)
    loaded = BayesianClassifier.load(quasi.save(tmp_path / "quasi"))
    assert loaded.prediction_noise == "sobol"
    assert np.array_equal(loaded.predict_proba(x), quasi.predict_proba(x))
    with pytest.raises(ValueError, match="prediction_noise must be one of"):
        BayesianClassifier(prediction_noise="halton").fit(x, y)
    counts, _ = fit("family", x, rng.poisson(2.0, size=60).astype(float), likelihood="poisson",
                    epochs=5, generator=torch.Generator().manual_seed(0))
    a = predict_family(counts, x[:4], 20, generator=torch.Generator().manual_seed(1))
    b = family_predictive(counts.model, counts.x_scaler.transform(
        torch.as_tensor(x[:4])).float(), 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.params["rate"], b.params["rate"])  # type: ignore[union-attr]
