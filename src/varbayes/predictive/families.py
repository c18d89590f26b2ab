"""The predictive of a non-Gaussian likelihood over S weight draws: an equal-weight mixture.

For components :math:`p(y \\mid \\theta_s(x))`, :math:`s = 1..S`, of a Student-t, Poisson or
exponential head (:class:`~varbayes.models.FamilyMLP`), :class:`FamilyPrediction` is the
mixture :math:`\\frac1S \\sum_s p(y \\mid \\theta_s)` with

* mean :math:`\\bar m = \\frac1S\\sum_s m_s` and variance :math:`\\frac1S\\sum_s v_s`
  (aleatoric: the expected variance) :math:`+ \\frac1S\\sum_s (m_s - \\bar m)^2` (epistemic: the
  variance of the means, population variance), where :math:`m_s, v_s` are each component's
  mean and variance (Student-t: :math:`v = scale^2 \\nu / (\\nu - 2)`, Poisson: :math:`v = m =
  rate`, exponential: :math:`v = m^2 = rate^{-2}`);
* log density by logsumexp over the draws;
* the CDF: Poisson through the regularised incomplete gamma function,
  :math:`P(Y \\le k) = Q(k + 1, \\lambda)` (``torch.special.gammaincc``); exponential
  :math:`1 - e^{-\\lambda y}`; Student-t through the incomplete beta function's continued
  fraction (:func:`~varbayes.likelihoods.student_t_cdf`, error below 1e-11);
* quantiles of the mixture itself: continuous ones by bisection on the mixture CDF to the
  float32 resolution of the network (``4 eps`` relative to the row's spread), inside a bracket
  from Cantelli's inequality; counts by bisection over the integers, so a count quantile is the
  smallest integer ``k`` with :math:`F(k) \\ge q`, an integer;
* sampling with a ``torch.Generator`` (uniform numbers only: inverse CDFs, and Bailey's polar
  method for the Student-t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from varbayes._checks_scalar import check_count
from varbayes._validation import to_tensor
from varbayes.likelihoods import get_likelihood, student_t_cdf
from varbayes.predictive.moments import VarianceSplit, central_interval

__all__ = ["FamilyPrediction", "is_count_likelihood"]

#: Continuous families, whose quantiles are found by bisection on the mixture CDF.
_CONTINUOUS = ("student_t", "exponential")


def _levels(q: float | Tensor) -> tuple[Tensor, bool]:
    qt = to_tensor(q, torch.float64, "cpu")
    scalar = qt.dim() == 0
    qt = qt.reshape(-1)
    if not bool(((qt > 0) & (qt < 1)).all()):
        raise ValueError(f"quantile levels must lie in (0, 1), got {qt.tolist()}")
    return qt, scalar


def is_count_likelihood(likelihood: str) -> bool:
    """Whether targets of ``likelihood`` are counts, whose quantiles are integers."""
    return likelihood == "poisson"


@dataclass(frozen=True)
class FamilyPrediction(VarianceSplit):
    """Mixture predictive of ``n`` inputs over ``S`` draws of a Student-t, Poisson or exponential.

    Attributes
    ----------
    likelihood : {'student_t', 'poisson', 'exponential'}
    params : dict of str to Tensor of shape (S, n)
        The likelihood's parameters per draw (Student-t: ``loc``, ``scale``, ``df``; the
        others: ``rate``), float64.
    """

    likelihood: str
    params: dict[str, Tensor]
    working_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.likelihood not in ("student_t", "poisson", "exponential"):
            raise ValueError(f"FamilyPrediction has no {self.likelihood!r} family")
        shapes = {tuple(t.shape) for t in self.params.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"FamilyPrediction needs parameters of one shape (S, n), got {shapes}")

    # ------------------------------------------------------------------ moments

    @property
    def num_samples(self) -> int:
        """Number of mixture components ``S``."""
        return int(next(iter(self.params.values())).shape[0])

    @property
    def is_count(self) -> bool:
        """Whether ``y`` is a count (integer quantiles)."""
        return is_count_likelihood(self.likelihood)

    @property
    def loc(self) -> Tensor:
        """Component means, shape (S, n)."""
        p = self.params
        if self.likelihood == "student_t":
            return p["loc"]
        return p["rate"] if self.likelihood == "poisson" else 1.0 / p["rate"]

    @property
    def component_var(self) -> Tensor:
        """Component variances, shape (S, n)."""
        p = self.params
        if self.likelihood == "student_t":
            return p["scale"] ** 2 * p["df"] / (p["df"] - 2.0)
        return p["rate"] if self.likelihood == "poisson" else p["rate"] ** -2.0

    @property
    def scale(self) -> Tensor:
        """Component standard deviations, shape (S, n)."""
        return self.component_var.sqrt()


    @property
    def component_means(self) -> Tensor:
        """The means of the mixture's components, shape (S, n)."""
        return self.loc

    @property
    def aleatoric_var(self) -> Tensor:
        """Expected variance of the components, shape (n,)."""
        return self.component_var.mean(0)




    # ------------------------------------------------------------------ distribution

    def _component_cdf(self, y: Tensor) -> Tensor:
        """CDF of every component at ``y`` of shape (..., 1, n); returns (..., S, n)."""
        p = self.params
        if self.likelihood == "student_t":
            return student_t_cdf(y, p["df"], p["loc"], p["scale"])
        if self.likelihood == "exponential":
            return -torch.expm1(-p["rate"] * y.clamp_min(0.0))
        k = torch.floor(y)
        rate = p["rate"].expand(torch.broadcast_shapes(k.shape, p["rate"].shape))
        inside = cast(Tensor, torch.special.gammaincc((k + 1.0).clamp_min(1.0).expand_as(rate),
                                                      rate))
        inside = torch.where(rate > 0, inside, torch.ones_like(inside))  # rate 0: all at 0
        return torch.where(k >= 0, inside, torch.zeros_like(inside))

    def cdf(self, y: Tensor) -> Tensor:
        """Mixture CDF :math:`P(Y \\le y)` at ``y`` of shape (n,) or (k, n); returns that shape."""
        return self._component_cdf(y.double().unsqueeze(-2)).mean(-2)

    def log_prob(self, y: Tensor) -> Tensor:
        """Mixture log density (mass, for counts) at ``y`` of shape (n,), by logsumexp."""
        comp = get_likelihood(self.likelihood).log_prob(y.double(), self.params)
        return torch.logsumexp(comp, dim=0) - math.log(self.num_samples)

    def quantile(self, q: float | Tensor) -> Tensor:
        """Quantiles of the mixture: shape (n,) for a float ``q``, else (k, n).

        Count quantiles are integers: the smallest ``k`` with :math:`F(k) \\ge q`.
        """
        qt, scalar = _levels(q)
        m, sd = self.loc, self.scale
        target = qt[:, None]
        # Cantelli: each component's q-quantile lies within m +- sd * sqrt(q / (1 - q)) (upper)
        # and sqrt((1 - q) / q) (lower), so the mixture's lies within the extremes over s.
        up = (qt / (1 - qt)).sqrt()[:, None, None]
        down = ((1 - qt) / qt).sqrt()[:, None, None]
        hi = (m + sd * up).max(1).values
        lo = (m - sd * down).min(1).values
        if self.is_count:
            result = self._count_bisect(torch.ceil(hi).clamp_min(0.0), target)
        else:
            if self.likelihood == "exponential":
                lo = lo.clamp_min(0.0)
            spread = self.std.clamp_min(torch.finfo(torch.float64).tiny)
            tol = 4 * torch.finfo(self.working_dtype or torch.float32).eps * spread
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                active = (hi - lo) > tol * (1 + (mid / spread).abs())
                if not bool(active.any()):
                    break
                below = self.cdf(mid) < target
                lo = torch.where(active & below, mid, lo)
                hi = torch.where(active & ~below, mid, hi)
            result = 0.5 * (lo + hi)
        return result[0] if scalar else result

    def interval(self, level: float = 0.9) -> tuple[Tensor, Tensor]:
        """Central interval of probability ``level`` (integer bounds for counts)."""
        return central_interval(self.quantile, level)

    def sample(self, num: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``num`` values of ``y`` per input from the mixture; shape (num, n)."""
        num = check_count(num, "num")
        first = next(iter(self.params.values()))
        n, dev = first.shape[1], first.device
        comp = torch.randint(0, self.num_samples, (num, n), generator=generator, device=dev)
        p = {k: v.gather(0, comp) for k, v in self.params.items()}
        u = torch.rand((num, n), generator=generator, dtype=torch.float64, device=dev)
        if self.likelihood == "exponential":
            return -torch.log1p(-u) / p["rate"]
        if self.likelihood == "poisson":
            one = FamilyPrediction("poisson", {"rate": p["rate"].reshape(1, -1)})
            k = one._count_inverse(u.reshape(-1))
            return k.reshape(num, n)
        return p["loc"] + p["scale"] * _student_t_draws(p["df"], generator)

    def _count_inverse(self, u: Tensor) -> Tensor:
        """Smallest integer k with F(k) >= u for a one-component prediction, shape (n,)."""
        rate = self.params["rate"][0]
        return self._count_bisect(torch.ceil(rate + (rate * u / (1 - u)).sqrt()).clamp_min(0.0), u)

    def _count_bisect(self, hi: Tensor, target: Tensor) -> Tensor:
        """Smallest integer k in [0, hi] with F(k) >= target, by bisection (F(hi) >= target)."""
        lo = torch.full_like(hi, -1.0)  # F(-1) = 0 < target
        while bool(((hi - lo) > 1).any()):
            mid = torch.floor(0.5 * (lo + hi))
            below = self.cdf(mid) < target
            step = (hi - lo) > 1
            lo = torch.where(step & below, mid, lo)
            hi = torch.where(step & ~below, mid, hi)
        return hi

    def affine(self, shift: Tensor | float, scale: Tensor | float) -> FamilyPrediction:
        """The predictive of ``shift + scale * y`` (Student-t only: a location-scale family)."""
        if self.likelihood != "student_t":
            raise ValueError(f"a {self.likelihood} predictive is not a location-scale family")
        p = self.params
        return FamilyPrediction(self.likelihood, {"loc": p["loc"] * scale + shift,
                                                  "scale": p["scale"] * scale, "df": p["df"]},
                                self.working_dtype)

    def __getitem__(self, index: slice | Tensor) -> FamilyPrediction:
        """Select inputs (the second dimension)."""
        return FamilyPrediction(self.likelihood, {k: v[:, index] for k, v in self.params.items()},
                                self.working_dtype)


def _student_t_draws(df: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard Student-t draws of shape ``df.shape``, Bailey's (1994) polar method."""
    out = torch.empty_like(df)
    todo = torch.ones_like(df, dtype=torch.bool)
    while bool(todo.any()):
        u = 2 * torch.rand(df.shape, generator=generator, dtype=df.dtype, device=df.device) - 1
        v = 2 * torch.rand(df.shape, generator=generator, dtype=df.dtype, device=df.device) - 1
        w = u * u + v * v
        ok = todo & (w < 1) & (w > 0)
        ws = torch.where(ok, w, torch.ones_like(w))
        t = u * (df * (ws.pow(-2.0 / df) - 1) / ws).sqrt()
        out = torch.where(ok, t, out)
        todo = todo & ~ok
    return out
