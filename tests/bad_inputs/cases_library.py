"""Bad hyperparameters, lifecycle, numerics inside the model, metrics and plots.

Rows ``hp-*``, ``lc-*``, ``num-*``, ``met-*`` and ``plot-*``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cases_common import (
    GOOD_CSV,
    CliRun,
    Ctx,
    LibCalls,
    X,
    Y,
    _est,
    _finite,
    _fit_flags,
    _fits,
    _fn,
    _g,
    _ok_run,
)
from sklearn.base import clone

from varbayes import BayesianClassifier, metrics, plots
from varbayes.data import read_csv
from varbayes.infer import ELBO, ELBOTerms, SquaredError, train
from varbayes.kinds import build_model, fit
from varbayes.predictive import predictive
from varbayes.priors import GaussianPrior

#: id, input, library answer, CLI answer (see ``test_bad_inputs.py``).
CASES: list[tuple[str, str, str, str]] = [
    # ---- hyperparameters and call arguments
    ("hp-prior-scale", "`prior_scale <= 0`", 'ValueError: "prior_scale must be in '
     'the range (0.0, inf)"', "n/a"),
    ("hp-init-rho", "`init_rho` of -50 or +100", "accepted: sigma = softplus(rho) + floor stays "
     "finite", "n/a"),
    ("hp-lr", "`lr <= 0`", 'ValueError: "lr must be in the range (0.0, inf)"',
     '2: "expected a positive"'),
    ("hp-lr-type", '`lr="x"`', 'TypeError: "lr must be a float, got str"',
     '2: "expected a positive finite number"'),
    ("hp-epochs", "negative epochs", 'ValueError: "epochs must be in the range [1, inf)"',
     '2: "expected a positive integer"'),
    ("hp-epochs-float", "`epochs=2.5`", 'TypeError: "epochs must be an int, got float 2.5"',
     '2: "expected a positive integer"'),
    ("hp-batch", "`batch_size <= 0`", 'ValueError: "batch_size must be in the range [1, inf)"',
     '2: "expected a positive integer"'),
    ("hp-batch-large", "`batch_size > n`", "accepted: full batch", "0: trains"),
    ("hp-hidden", '`hidden="12"` (a string, not `[1, 2]`)', 'TypeError: "hidden must be an '
     'int or a sequence of ints"', '2: "layer sizes"'),
    ("hp-particles", "`num_particles = 0`", 'ValueError: "num_particles must be in the range '
     '[1, inf)"', "n/a"),
    ("hp-kl-weight", "`kl_weight < 0`", 'ValueError: "kl_weight must be in the range [0.0, inf)"',
     "n/a"),
    ("hp-min-scale", "`min_scale <= 0`", 'ValueError: "min_scale must be in the range (0.0, '
     'inf)"', "n/a"),
    ("hp-kind", "unknown model kind", "ValueError: \"allowed values are 'mle', 'vi'\"",
     '2: "invalid choice"'),
    ("hp-enums", "unknown `kl` / `estimator` / `noise` strings", 'ValueError: "allowed values '
     'are"', '2: "invalid choice"'),
    ("hp-method", "unknown training `method` (`'adam'`)", "ValueError: \"unknown method 'adam'; "
     "allowed values are 'bbb', 'ivon'\"", '2: "invalid choice"'),
    ("hp-method-kind", "`method='ivon'` with a kind without weight uncertainty (`mle`, `vi`), or "
     "with `kl='mc'` / `prior='scale_mixture'`", "ValueError: \"method='ivon'\" (the message "
     "names the kind or option)", "2: \"method='ivon' trains a model with weight uncertainty\""),
    ("hp-members-ivon", "`n_members > 1` (an ensemble) with `method='ivon'` "
     "(`BayesianClassifier`, `kinds.fit('family', ...)`)", "ValueError: \"method='ivon' trains "
     "one network (n_members=1)\"", "n/a"),
    ("hp-map-ivon", "`map_epochs > 0` (a MAP start) with `method='ivon'` "
     "(`BayesianClassifier`, `kinds.fit('family', ...)`)", "ValueError: \"method='ivon' takes "
     "map_epochs=0\"", "n/a"),
    ("hp-map-scale", "`map_scale` not above the weight layers' scale floor (`1e-6`)",
     'ValueError: "must be above the layers\' scale floor"', "n/a"),
    ("hp-random-state", "`random_state` that is not an int, generator or None", 'TypeError: '
     '"random_state must be None, a non-negative int"', '2: "expected an integer >= 0"'),
    ("hp-samples-0", "`num_samples = 0`", 'ValueError: "num_samples must be"',
     '2: "expected a positive integer"'),
    ("hp-samples-1", "`num_samples = 1`", "accepted: epistemic variance 0, never NaN",
     "0: finite std"),
    ("hp-generator", "a `generator` on another device than the model", 'ValueError: '
     '"generator is on device"', "n/a"),
    # ---- lifecycle
    ("lc-not-fitted", "`predict`, `sample_y`, `save` before `fit`", 'NotFittedError: "is not '
     'fitted yet"', '2: "does not exist"'),
    ("lc-refit", "`fit` twice; `set_params` then `fit`; `clone`", "accepted: identical results "
     "with the same `random_state`", "n/a"),
    ("lc-nan-loss", "a NaN loss partway through training", 'NonFiniteLossError: "lower the '
     'learning rate"', '1: "lower the learning rate (--lr 1e+06)"'),
    ("lc-nan-skip", "the same with `nonfinite='skip'`", "accepted: the step is skipped and "
     "counted in `history.skipped_steps`", '1: "every step of epoch"'),
    ("lc-warm-start", "a refit with another input dimension (no warm start)", "accepted: every "
     "fit starts afresh", "n/a"),
    # ---- numerics inside the model
    ("num-scale-floor", "predicted scale -> 0", "accepted: floored at `min_scale`", "n/a"),
    ("num-scale-inf", "predicted scale -> inf", "accepted: softplus is linear, no overflow",
     "n/a"),
    ("num-rho", "`rho` very negative / very positive", "accepted: sigma >= floor, finite KL",
     "n/a"),
    ("num-kl-zero", "posterior equal to the prior", "accepted: KL is exactly 0", "n/a"),
    ("num-zero-grad", "all-zero gradients", "accepted: parameters unchanged, finite history",
     "n/a"),
    ("num-mean-mode", "eval versus train mode, `sample=False`", "accepted: one deterministic "
     "component; the training mode is restored", "n/a"),
    # ---- metrics and plots
    ("met-std", "`std <= 0`", 'ValueError: "std must be > 0 everywhere"', "n/a"),
    ("met-nan", "NaN predictions", 'ValueError: "non-finite value(s)"', "n/a"),
    ("met-shape", "mismatched lengths of `y_true`, `mean`, `std`", 'ValueError: "length '
     'mismatch"', "n/a"),
    ("met-empty", "empty arrays", 'ValueError: "is empty"', "n/a"),
    ("met-single", "a single point", "accepted: finite scores", "n/a"),
    ("met-level", "coverage level outside (0, 1)", 'ValueError: "level must lie in (0, 1)"',
     '2: "expected a number in (0, 1)"'),
    ("met-bins", "number of bins < 1", 'ValueError: "num_levels must be"', "n/a"),
    ("plot-ax", "plotting with `ax=None` or a given `ax`, headless", "accepted: no pyplot, no "
     "`plt.show()`", "n/a"),
]  # fmt: skip


def _nan_objective(at_step: int) -> Callable[..., ELBOTerms]:
    base, calls = SquaredError(), [0]

    def objective(model: Any, x: Any, y: Any, *, generator: Any = None) -> ELBOTerms:
        calls[0] += 1
        terms = base(model, x, y, generator=generator)
        return terms._replace(loss=terms.loss * float("nan")) if calls[0] == at_step else terms

    return objective


def _train_with_nan(policy: str) -> None:
    x, y = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)
    model = build_model({"kind": "mle", "in_features": 2, "hidden": [4]}, _g())
    history = train(
        model, _nan_objective(3), x, y, epochs=5, lr=0.01, batch_size=5, nonfinite=policy
    )
    assert history.skipped_steps == 1 and len(history.loss) == 5
    _finite(history.loss)


def _lib_nan_skip(c: Ctx) -> list[Callable[[], Any]]:
    return [lambda: _train_with_nan("skip")]


def _lib_refit(c: Ctx) -> list[Callable[[], Any]]:
    def same() -> None:
        est = _est()
        a = est.fit(X, Y).predict(X)
        np.testing.assert_array_equal(a, est.fit(X, Y).predict(X))
        np.testing.assert_array_equal(a, clone(est).fit(X, Y).predict(X))
        b = _est(epochs=1).set_params(epochs=2).fit(X, Y).predict(X)
        np.testing.assert_array_equal(a, b)

    return [same]


def _lib_samples_1(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        pred = c.fm.predict(X, 1)
        assert (pred.epistemic_var == 0).all()
        _finite(pred.std)
        _finite(*_est(num_samples=1).fit(X, Y).predict(X, return_std=True))

    return [check]


class _CudaGenerator:
    device = torch.device("cuda", 0)


def _lib_generator(c: Ctx) -> list[Callable[[], Any]]:
    gen: Any = torch.Generator("cuda") if torch.cuda.is_available() else _CudaGenerator()
    return [lambda: c.fm.predict(X, 5, generator=gen)]


def _scale_at(c: Ctx, value: float) -> torch.Tensor:
    """The predicted noise scale of a hetero model whose raw noise output is ``value``."""
    model = build_model(c.fm.config, _g())
    with torch.no_grad():
        model.noise_net[-1].weight.zero_()
        model.noise_net[-1].bias.fill_(value)
    scale = model(torch.as_tensor(X, dtype=torch.float32), 2, generator=_g()).scale
    _finite(scale)
    return scale


def _assert_zero(t: torch.Tensor) -> None:
    assert (t == 0).all()


def _lib_scale_floor(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        scale = _scale_at(c, -1e4)
        assert (scale == c.fm.config["min_scale"]).all()

    return [check]


def _lib_rho(c: Ctx) -> list[Callable[[], Any]]:
    from varbayes.nn.layers import BayesLinear

    def check(rho: float) -> None:
        layer = BayesLinear(3, 2, init_rho=rho, generator=_g())
        assert (layer.weight_scale >= layer.min_scale).all()
        _finite(layer.kl_divergence(), layer(torch.ones(4, 3), generator=_g()))

    return [lambda: check(-50.0), lambda: check(100.0)]


def _lib_zero_grad(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        model = build_model({"kind": "mle", "in_features": 2, "hidden": [4]}, _g())
        before = [p.detach().clone() for p in model.parameters()]

        def zero(m: Any, x: Any, y: Any, *, generator: Any = None) -> ELBOTerms:
            loss = sum((p * 0).sum() for p in m.parameters())
            return ELBOTerms(loss, loss.detach(), loss.detach())

        history = train(model, zero, torch.ones(5, 2), torch.ones(5), epochs=3, lr=0.1)
        assert history.loss == [0.0, 0.0, 0.0]
        for a, b in zip(before, model.parameters(), strict=True):
            assert torch.equal(a, b)

    return [check]


def _lib_mean_mode(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        model = c.fm.model
        model.train()
        xt = torch.as_tensor(X, dtype=torch.float32)
        a = predictive(model, xt, 7, sample=False, generator=_g())
        b = predictive(model, xt, 7, sample=False, generator=torch.Generator().manual_seed(9))
        assert a.num_samples == 1 and torch.equal(a.loc, b.loc)
        assert model.training  # restored
        model.eval()
        sampled = predictive(model, xt, 7, generator=_g())
        assert sampled.num_samples == 7 and (sampled.epistemic_var > 0).all()

    return [check]


def _lib_plot(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        from matplotlib.figure import Figure

        pred = c.fm.predict(X, 5)
        ax = plots.plot_calibration(Y, pred)
        assert isinstance(ax.figure, Figure)
        fig, given = plots.new_figure()
        assert plots.plot_calibration(Y, pred, ax=given) is given
        tree = ast.parse(Path(plots.__file__).read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                 for a in n.names] + [n.module or "" for n in ast.walk(tree)
                                      if isinstance(n, ast.ImportFrom)]  # fmt: skip
        assert not any("pyplot" in name for name in names)
        calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
        assert not any(isinstance(f, ast.Attribute) and f.attr == "show" for f in calls)

    return [check]


LIB: dict[str, LibCalls] = {
    "hp-prior-scale": lambda c: [*_fits(X, prior_scale=0.0), *_fits(X, prior_scale=-1.0)],
    "hp-init-rho": lambda c: [lambda rho=rho: _finite(
        _fn(X, kind="bbb", init_rho=rho).predict(X, 5).std) for rho in (-50.0, 100.0)],
    "hp-lr": lambda c: [*_fits(X, lr=0.0), *_fits(X, lr=-1.0)],
    "hp-lr-type": lambda c: _fits(X, lr="x"),
    "hp-epochs": lambda c: [lambda: _est(epochs=-1).fit(X, Y),
                            lambda: fit("mle", X, Y, epochs=-1)],
    "hp-epochs-float": lambda c: [lambda: _est(epochs=2.5).fit(X, Y),
                                  lambda: fit("mle", X, Y, epochs=2.5)],
    "hp-batch": lambda c: _fits(X, batch_size=0),
    "hp-batch-large": lambda c: [lambda: _finite(_est(batch_size=500).fit(X, Y).predict(X))],
    "hp-hidden": lambda c: [lambda: _est(hidden="12").fit(X, Y),
                            lambda: fit("mle", X, Y, hidden="12")],
    "hp-particles": lambda c: [lambda: _fn(X, num_particles=0)],
    "hp-kl-weight": lambda c: [lambda: ELBO(10, kl_weight=-1.0)],
    "hp-min-scale": lambda c: [lambda: _fn(X, min_scale=0.0)],
    "hp-kind": lambda c: [lambda: _est(model="gp").fit(X, Y), lambda: _fn(X, kind="gp")],
    "hp-enums": lambda c: [*_fits(X, kl="foo"), lambda: _fn(X, estimator="foo"),
                           lambda: _fn(X, kind="bbb", noise="loud")],
    "hp-method": lambda c: [lambda: _est(method="adam").fit(X, Y), lambda: _fn(X, method="adam"),
                            lambda: BayesianClassifier(method="adam").fit(X, Y > 0)],
    "hp-method-kind": lambda c: [lambda: _est(model="mle", method="ivon").fit(X, Y),
                                 lambda: _fn(X, kind="vi", method="ivon"),
                                 lambda: _est(method="ivon", kl="mc").fit(X, Y),
                                 lambda: _fn(X, method="ivon", prior="scale_mixture")],
    "hp-members-ivon": lambda c: [
        lambda: BayesianClassifier(n_members=2, method="ivon").fit(X, Y > 0),
        lambda: _fn(X, (Y > 0).astype(float), kind="family", likelihood="bernoulli",
                    n_members=2, method="ivon")],
    "hp-map-ivon": lambda c: [
        lambda: BayesianClassifier(map_epochs=5, method="ivon").fit(X, Y > 0),
        lambda: _fn(X, (Y > 0).astype(float), kind="family", likelihood="bernoulli",
                    map_epochs=5, method="ivon")],
    "hp-map-scale": lambda c: [
        lambda: BayesianClassifier(epochs=2, map_epochs=1, map_scale=1e-6).fit(X, Y > 0),
        lambda: _fn(X, (Y > 0).astype(float), kind="family", likelihood="bernoulli",
                    epochs=2, map_epochs=1, map_scale=1e-7)],
    "hp-random-state": lambda c: [lambda: _est(random_state="seed").fit(X, Y),
                                  lambda: _est(random_state=0.5).fit(X, Y)],
    "hp-samples-0": lambda c: [lambda: _est(num_samples=0).fit(X, Y),
                               lambda: c.fm.predict(X, 0)],
    "hp-samples-1": _lib_samples_1,
    "hp-generator": _lib_generator,
    "lc-not-fitted": lambda c: [lambda: _est().predict(X), lambda: _est().sample_y(X),
                                lambda: _est().save(c.tmp / "m")],
    "lc-refit": _lib_refit,
    "lc-nan-loss": lambda c: [lambda: _train_with_nan("raise"),
                              lambda: fit("bbb", X, Y, epochs=20, lr=1e6, generator=_g())],
    "lc-nan-skip": _lib_nan_skip,
    "lc-warm-start": lambda c: [lambda: _finite(
        _est().fit(X, Y).fit(X[:, :1], Y).predict(X[:, :1]))],
    "num-scale-floor": _lib_scale_floor,
    "num-scale-inf": lambda c: [lambda: _finite(_scale_at(c, 1e30))],
    "num-rho": _lib_rho,
    "num-kl-zero": lambda c: [lambda: _assert_zero(
        GaussianPrior(0.5, 2.0).kl(torch.full((3,), 0.5), torch.full((3,), 2.0)))],
    "num-zero-grad": _lib_zero_grad,
    "num-mean-mode": _lib_mean_mode,
    "met-std": lambda c: [lambda: metrics.gaussian_nll(Y, Y, np.zeros(20)),
                          lambda: metrics.crps_gaussian(Y, Y, -np.ones(20))],
    "met-nan": lambda c: [lambda: metrics.rmse(Y, np.where(np.arange(20) == 1, np.nan, Y))],
    "met-shape": lambda c: [lambda: metrics.rmse(Y, Y[:5]),
                            lambda: metrics.gaussian_nll(Y, Y, np.ones(19))],
    "met-empty": lambda c: [lambda: metrics.rmse([], [])],
    "met-single": lambda c: [lambda: _finite(metrics.gaussian_nll([1.0], [0.0], [1.0]),
                                             metrics.crps_gaussian([1.0], [0.0], [1.0]))],
    "met-level": lambda c: [lambda: metrics.evaluate(Y, c.fm.predict(X, 5), level=1.5),
                            lambda: metrics.evaluate(Y, c.fm.predict(X, 5), level=0.0)],
    "met-bins": lambda c: [lambda: metrics.calibration_error(Y, c.fm.predict(X, 5), num_levels=0),
                           lambda: plots.plot_calibration(Y, c.fm.predict(X, 5), num_levels=0)],
    "plot-ax": _lib_plot,
}  # fmt: skip


def _cli_samples_1(c: Ctx) -> tuple[int, str, str]:
    result = c.run("predict", c.model, c.csv(GOOD_CSV), "--samples", 1, "--out", c.tmp / "p.csv")
    std = read_csv(c.tmp / "p.csv", target="std", features=["a"]).y
    assert np.isfinite(std).all() and (std > 0).all()
    return _ok_run(result, "finite std")


def _cli_not_fitted(c: Ctx) -> tuple[int, str, str]:
    return c.run("predict", c.tmp / "nomodel", c.csv(GOOD_CSV), "--out", c.tmp / "p.csv")


CLI: dict[str, CliRun] = {
    "hp-lr": lambda c: _fit_flags(c, "--lr", 0),
    "hp-lr-type": lambda c: _fit_flags(c, "--lr", "x"),
    "hp-epochs": lambda c: _fit_flags(c, "--epochs", -3),
    "hp-epochs-float": lambda c: _fit_flags(c, "--epochs", 2.5),
    "hp-batch": lambda c: _fit_flags(c, "--batch-size", 0),
    "hp-batch-large": lambda c: _ok_run(_fit_flags(c, "--batch-size", 1000), "trains"),
    "hp-hidden": lambda c: _fit_flags(c, "--hidden", "5,x"),
    "hp-kind": lambda c: _fit_flags(c, "--model", "gp"),
    "hp-enums": lambda c: _fit_flags(c, "--model", "bbb", "--noise", "loud"),
    "hp-method": lambda c: _fit_flags(c, "--method", "adam"),
    "hp-method-kind": lambda c: _fit_flags(c, "--method", "ivon", "--model", "mle"),
    "hp-random-state": lambda c: _fit_flags(c, "--seed", "x"),
    "hp-samples-0": lambda c: c.run("predict", c.model, c.csv(GOOD_CSV), "--samples", 0,
                                    "--out", c.tmp / "p.csv"),
    "hp-samples-1": _cli_samples_1,
    "lc-not-fitted": _cli_not_fitted,
    "lc-nan-loss": lambda c: c.run("fit", "--model", "bbb", "--lr", "1e6", "--epochs", 20,
                                   "--out", c.tmp / "m"),
    "lc-nan-skip": lambda c: c.run("fit", "--model", "bbb", "--lr", "1e6", "--epochs", 20,
                                   "--nonfinite", "skip", "--out", c.tmp / "m"),
    "met-level": lambda c: c.run("evaluate", c.model, c.csv(GOOD_CSV), "--level", 1.5),
}  # fmt: skip
