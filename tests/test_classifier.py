"""BayesianClassifier: scikit-learn's checks, labels of any type, bad labels, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from varbayes import BayesianClassifier


@parametrize_with_checks([BayesianClassifier()])
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)


def _blobs(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 2)) + 2.5 * np.stack([np.cos(2 * y), np.sin(2 * y)], 1)
    return x, y


def test_string_labels_probabilities_and_entropy_split() -> None:
    x, y = _blobs()
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = BayesianClassifier(epochs=150, random_state=0).fit(x, labels)
    assert clf.classes_.tolist() == ["cat", "dog", "emu"]
    proba = clf.predict_proba(x)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (clf.predict(x) == labels).mean() > 0.9
    parts = clf.predict_uncertainty(x[:10])
    np.testing.assert_allclose(parts["entropy"],
                               parts["aleatoric_entropy"] + parts["mutual_information"])
    assert (parts["mutual_information"] >= 0).all()


def test_single_class_is_refused() -> None:
    x, _ = _blobs()
    with pytest.raises(ValueError, match=r"y holds one class \('a'\)"):
        BayesianClassifier(epochs=2).fit(x, np.array(["a"] * len(x)))


def test_unseen_class_at_predict_is_refused() -> None:
    x, y = _blobs()
    clf = BayesianClassifier(epochs=5, random_state=0).fit(x, y)
    np.testing.assert_array_equal(clf.check_labels([2, 0]), [2, 0])
    with pytest.raises(ValueError, match=r"y\[1\] = 7 is a class never seen in fit"):
        clf.check_labels(np.array([1, 7]))
    with pytest.raises(ValueError, match="never seen in fit"):
        clf.score(x[:3], np.array([0, 1, 9]))


def test_save_and_load_keep_labels_and_predictions(tmp_path: Path) -> None:
    x, y = _blobs()
    labels = np.array(["no", "yes", "yes"])[y]
    clf = BayesianClassifier(epochs=20, random_state=0).fit(x, labels)
    loaded = BayesianClassifier.load(clf.save(tmp_path / "c"))
    assert loaded.classes_.tolist() == ["no", "yes"]
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_array_equal(loaded.predict(x), clf.predict(x))


def test_ensemble_is_the_equal_mixture_of_its_members_and_round_trips(tmp_path: Path) -> None:
    import torch

    from varbayes.models import Ensemble, FamilyMLP
    from varbayes.predictive import family_predictive

    x, y = _blobs()
    clf = BayesianClassifier(epochs=30, n_members=3, random_state=0).fit(x, y)
    net = clf.model_.model
    assert isinstance(net, Ensemble) and len(net.members) == 3
    assert all(isinstance(m, FamilyMLP) for m in net.members)
    assert len(clf.model_.fit_info["members"]) == 3  # each member stopped on its own part
    assert clf.model_.fit_info["temperature"] == clf.model_.temperature
    # The ensemble's draws are its members' draws, one member after the other: the mixture's
    # class probabilities are the average of the members' (equal shares of 9 draws).
    z = torch.randn(7, 2, dtype=torch.float64).float()
    g = torch.Generator().manual_seed(3)
    whole = family_predictive(net, z, 9, generator=torch.Generator().manual_seed(3))
    parts = [family_predictive(m, z, 3, generator=g) for m in net.members]
    torch.testing.assert_close(whole.probs, sum(p.probs for p in parts) / 3)
    loaded = BayesianClassifier.load(clf.save(tmp_path / "e"))
    assert loaded.n_members == 3 and loaded.model_.temperature == clf.model_.temperature
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))


def test_ensemble_options_are_checked() -> None:
    x, y = _blobs()
    with pytest.raises(ValueError, match="method='ivon' trains one network"):
        BayesianClassifier(epochs=2, n_members=2, method="ivon").fit(x, y)
    with pytest.raises(ValueError, match="n_members"):
        BayesianClassifier(epochs=2, n_members=0).fit(x, y)


def test_map_start_is_an_option_off_by_default() -> None:
    x, y = _blobs(90)
    plain = BayesianClassifier(epochs=12, random_state=0).fit(x, y)
    assert plain.model_.config["map_epochs"] == 0
    warm = BayesianClassifier(epochs=12, map_epochs=10, map_scale=0.05, random_state=0).fit(x, y)
    assert warm.model_.config["map_epochs"] == 10 and warm.model_.config["map_scale"] == 0.05
    assert not np.array_equal(warm.predict_proba(x), plain.predict_proba(x))
    with pytest.raises(ValueError, match="map_epochs"):
        BayesianClassifier(epochs=2, map_epochs=-1).fit(x, y)
