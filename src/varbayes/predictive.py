"""Posterior predictive: S weight draws in one batched pass, summarised as a Gaussian mixture.

For a model with Gaussian components :math:`\\mathcal{N}(\\mu_s(x), \\sigma_s^2(x))`,
:math:`s = 1..S`, the predictive of ``y`` is the mixture

.. math:: p(y|x) \\approx \\frac1S \\sum_{s=1}^S \\mathcal{N}(y; \\mu_s(x), \\sigma_s^2(x))

with

.. math::
    \\mathbb{E}[y] = \\bar\\mu = \\frac1S\\sum_s \\mu_s, \\qquad
    \\operatorname{Var}[y] = \\underbrace{\\frac1S\\sum_s \\sigma_s^2}_{\\text{aleatoric}}
      + \\underbrace{\\frac1S\\sum_s (\\mu_s - \\bar\\mu)^2}_{\\text{epistemic}}.

The epistemic part uses the population variance (divisor ``S``), so the identity is exact for any
``S`` and ``S = 1`` gives 0, never NaN. Quantiles are those of the mixture itself, found by
bisection on its CDF (to the resolution of the prediction's dtype), not empirical quantiles of a
finite number of ``y`` draws. The blog post's 1000 forward passes in a Python loop become one
call with a leading sample dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from varbayes._threads import intra_op_threads
from varbayes._validation import to_tensor

__all__ = [
    "MAX_DRAW_BYTES",
    "Prediction",
    "check_draw_budget",
    "prediction_columns",
    "predictive",
]

#: Memory the posterior draws for one input row may take in a prediction (2 GiB): S weight
#: draws of every Bayesian layer plus the S mixture components and their interval search.
#: Callers chunk the rows (``varbayes.data.csvstream.predict_chunk_rows``), so more rows never
#: need more than a chunk's worth.
MAX_DRAW_BYTES = 2 << 30


@dataclass(frozen=True)
class Prediction:
    """Gaussian-mixture predictive for ``n`` inputs.

    Attributes
    ----------
    loc : Tensor of shape (S, n)
        Component means :math:`\\mu_s(x)`.
    scale : Tensor of shape (S, n)
        Component standard deviations :math:`\\sigma_s(x)`.
    working_dtype : torch.dtype or None
        The dtype the components were computed in, when ``loc`` and ``scale`` were widened
        afterwards (e.g. float32 network outputs held in float64 data units): quantiles are
        resolved to its precision. ``None``: ``loc``'s dtype.
    """

    loc: Tensor
    scale: Tensor
    working_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.loc.dim() != 2 or self.loc.shape != self.scale.shape:
            raise ValueError(
                f"Prediction needs loc and scale of the same shape (S, n), got "
                f"{tuple(self.loc.shape)} and {tuple(self.scale.shape)}"
            )

    @property
    def num_samples(self) -> int:
        """Number of mixture components ``S``."""
        return self.loc.shape[0]

    @property
    def mean(self) -> Tensor:
        """Predictive mean, shape (n,)."""
        return self.loc.mean(0)

    @property
    def aleatoric_var(self) -> Tensor:
        """Expected noise variance :math:`\\frac1S\\sum_s\\sigma_s^2`, shape (n,)."""
        return (self.scale * self.scale).mean(0)

    @property
    def epistemic_var(self) -> Tensor:
        """Variance of the component means (population variance), shape (n,)."""
        return self.loc.var(0, correction=0)

    @property
    def var(self) -> Tensor:
        """Total predictive variance, aleatoric + epistemic, shape (n,)."""
        return self.aleatoric_var + self.epistemic_var

    @property
    def std(self) -> Tensor:
        """Total predictive standard deviation, shape (n,)."""
        return self.var.sqrt()

    def cdf(self, y: Tensor) -> Tensor:
        """Mixture CDF at ``y`` of shape (n,) (or broadcastable to (k, n)); returns that shape."""
        z = (y.unsqueeze(-2) - self.loc) / self.scale
        return torch.special.ndtr(z).mean(-2)

    def log_prob(self, y: Tensor) -> Tensor:
        """Mixture log density at ``y`` of shape (n,), computed with logsumexp; shape (n,)."""
        z = (y - self.loc) / self.scale
        comp = -0.5 * z * z - self.scale.log() - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(comp, dim=0) - math.log(self.num_samples)

    def quantile(self, q: float | Tensor) -> Tensor:
        """Quantiles of the mixture.

        Parameters
        ----------
        q : float or Tensor of shape (k,)
            Probabilities in (0, 1).

        Returns
        -------
        Tensor of shape (n,) for a float ``q``, else (k, n).
        """
        qt = to_tensor(q, torch.float64, "cpu")
        scalar = qt.dim() == 0
        qt = qt.reshape(-1)
        if not bool(((qt > 0) & (qt < 1)).all()):
            raise ValueError(f"quantile levels must lie in (0, 1), got {qt.tolist()}")
        loc, scale = self.loc.double(), self.scale.double()
        if self.num_samples == 1:
            z = torch.special.ndtri(qt)[:, None]
            result = loc[0] + scale[0] * z
        else:
            # Bisect in units of each row's own spread, u = (y - centre) / spread, so that the
            # resolution follows the mixture's width, not the magnitude of y (y = 1e9 + k).
            centre = loc.mean(0)
            spread = ((scale * scale).mean(0) + loc.var(0, correction=0)).sqrt()
            spread = spread.clamp_min(torch.finfo(torch.float64).tiny)
            loc, scale = (loc - centre) / spread, scale / spread
            # Every quantile lies between the smallest and largest component quantile.
            zq = torch.special.ndtri(qt)[:, None, None]
            comp_q = loc + scale * zq  # (k, S, n)
            lo, hi = comp_q.min(1).values, comp_q.max(1).values
            target = qt[:, None]
            # Bisect until the bracket is below the resolution of the working dtype (about 24
            # halvings for float32 components, 50 for float64), not a fixed number of times.
            tol = 4 * torch.finfo(self.working_dtype or self.loc.dtype).eps
            # A row whose bracket is narrow enough stops moving, so its result does not depend
            # on the other rows of the batch.
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                active = (hi - lo) > tol * (1 + mid.abs())
                if not bool(active.any()):
                    break
                below = torch.special.ndtr((mid.unsqueeze(1) - loc) / scale).mean(1) < target
                lo = torch.where(active & below, mid, lo)
                hi = torch.where(active & ~below, mid, hi)
            result = centre + spread * (0.5 * (lo + hi))
        result = result.to(self.loc.dtype)
        return result[0] if scalar else result

    def interval(self, level: float = 0.9) -> tuple[Tensor, Tensor]:
        """Central interval of probability ``level``: the (1-level)/2 and (1+level)/2 quantiles."""
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        probs = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
        bounds = self.quantile(probs)
        return bounds[0], bounds[1]

    def sample(self, num: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``num`` values of ``y`` per input from the mixture; shape (num, n)."""
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ValueError(f"num must be a positive integer, got {num!r}")
        n = self.loc.shape[1]
        comp = torch.randint(0, self.num_samples, (num, n), generator=generator,
                             device=self.loc.device)
        loc = self.loc.gather(0, comp)
        scale = self.scale.gather(0, comp)
        eps = torch.randn(loc.shape, generator=generator, dtype=loc.dtype, device=loc.device)
        return loc + scale * eps

    def affine(self, shift: Tensor | float, scale: Tensor | float) -> Prediction:
        """The predictive of ``shift + scale * y`` (e.g. back to data units), ``scale > 0``."""
        return Prediction(self.loc * scale + shift, self.scale * scale, self.working_dtype)

    def __getitem__(self, index: slice | Tensor) -> Prediction:
        """Select inputs (the second dimension)."""
        return Prediction(self.loc[:, index], self.scale[:, index], self.working_dtype)


def _first_nonfinite(columns: dict[str, Tensor], row_names: Sequence[str] | None) -> None:
    """Raise ``ValueError`` naming the first row (and its column) that is not finite."""
    bad = torch.zeros_like(next(iter(columns.values())), dtype=torch.bool)
    for values in columns.values():
        bad |= ~torch.isfinite(values)
    if not bool(bad.any()):
        return
    i = int(torch.nonzero(bad)[0])
    name, value = next((k, float(v[i])) for k, v in columns.items() if not math.isfinite(v[i]))
    where = row_names[i] if row_names is not None else f"row {i}"
    raise ValueError(
        f"{where}: the prediction is not finite ({name} = {value}), refusing to write it "
        f"({int(bad.sum())} such row(s)); the input is far outside the training data or the "
        "model's weights are out of range"
    )


@torch.no_grad()
def prediction_columns(
    pred: Prediction, level: float = 0.9, *, epistemic: bool = True,
    row_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Per-row summaries of ``pred`` as float64 arrays, refusing non-finite values.

    The summaries are computed in float64 (a std of 1e30 has a variance of 1e60, beyond
    float32), and every value is checked before anything is returned, so no ``inf`` / ``nan``
    reaches a results file.

    Parameters
    ----------
    pred : Prediction
        ``n`` rows, in the units to report.
    level : float in (0, 1), default=0.9
        Probability of the central interval ``lower`` .. ``upper``.
    epistemic : bool, default=True
        Include ``epistemic_std``.
    row_names : sequence of str or None
        How to name row ``i`` in the error (e.g. ``"data.csv, row 7"``); default ``"row i"``.

    Returns
    -------
    dict of str to ndarray of shape (n,)
        ``mean``, ``std``, ``lower``, ``median``, ``upper``, ``aleatoric_std`` and, with
        ``epistemic``, ``epistemic_std``.

    Raises
    ------
    ValueError
        Naming the first row whose prediction (a component or a summary) is NaN or infinite.
    """
    wide = Prediction(pred.loc.double(), pred.scale.double(),
                      pred.working_dtype or pred.loc.dtype)
    mean, std = wide.mean, wide.std
    _first_nonfinite({"mean": mean, "std": std}, row_names)  # before bisecting on NaN
    lower, upper = wide.interval(level)
    columns = {"mean": mean, "std": std, "lower": lower, "median": wide.quantile(0.5),
               "upper": upper, "aleatoric_std": wide.aleatoric_var.sqrt()}
    if epistemic:
        columns["epistemic_std"] = wide.epistemic_var.sqrt()
    _first_nonfinite(columns, row_names)
    return {k: v.detach().cpu().numpy() for k, v in columns.items()}


def draw_bytes_per_row(model: torch.nn.Module, num_samples: int) -> int:
    """Bytes the posterior draws of one row take: S x (weight draws + mixture work).

    Each of the ``S`` draws samples every weight and bias of the Bayesian layers (float32, with
    its noise: 8 bytes an element) and adds a mixture component whose interval search works in
    float64 (about 64 bytes). A model without weight uncertainty draws one component.
    """
    sampled = 0
    for module in model.modules():
        for name in ("weight_loc", "bias_loc"):
            tensor = getattr(module, name, None)
            if isinstance(tensor, torch.Tensor):
                sampled += tensor.numel()
    draws = int(num_samples) if sampled else 1
    return draws * (8 * sampled + 64)


def check_draw_budget(model: torch.nn.Module, num_samples: int) -> None:
    """Refuse ``num_samples`` when one row's draws alone exceed :data:`MAX_DRAW_BYTES`.

    Raises
    ------
    ValueError
        Naming the number of samples, the memory it needs, the limit and the largest number
        of samples within it.
    """
    need = draw_bytes_per_row(model, num_samples)
    if need <= MAX_DRAW_BYTES:
        return
    per_draw = max(1, draw_bytes_per_row(model, 1))
    raise ValueError(
        f"num_samples={num_samples} needs about {need / 2**30:.3g} GiB for the posterior draws "
        f"of a single row, above the limit of {MAX_DRAW_BYTES / 2**30:g} GiB "
        f"(varbayes.predictive.MAX_DRAW_BYTES); use at most {MAX_DRAW_BYTES // per_draw} samples"
    )


@torch.no_grad()
def predictive(
    model: nn.Module,
    x: Tensor,
    num_samples: int = 1000,
    *,
    generator: torch.Generator | None = None,
    sample: bool = True,
    chunk_size: int | None = None,
) -> Prediction:
    """Draw the posterior predictive of ``model`` at ``x`` in one batched pass.

    Parameters
    ----------
    model : nn.Module
        A :mod:`varbayes.models` model.
    x : Tensor of shape (n, d)
        Standardised inputs.
    num_samples : int, default=1000
        Weight draws ``S``. Models without weight uncertainty return one component.
    generator : torch.Generator or None
        Source of the weight noise; fix it for reproducible predictions.
    sample : bool, default=True
        ``False`` predicts at the posterior means (one component).
    chunk_size : int or None, default=None
        Process the rows in chunks of this size (the same weight draws for every chunk), so
        memory is ``O(S * chunk_size * width)`` rather than ``O(S * n * width)``.

    Returns
    -------
    Prediction
        In the model's (standardised) units; see :meth:`Prediction.affine`.

    Raises
    ------
    ValueError
        For ``num_samples`` that is not a positive integer, or so large that the draws for a
        single row would exceed :data:`MAX_DRAW_BYTES` (2 GiB).

    Notes
    -----
    The model is evaluated under ``torch.no_grad()`` and nothing about it changes: no KL is
    computed or stored, and its training mode is restored.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if x.dim() != 2:
        raise ValueError(f"predictive expects x of shape (n, d), got {tuple(x.shape)}")
    check_draw_budget(model, num_samples if sample else 1)  # before allocating any draw
    was_training = model.training
    model.eval()
    # Per-sample work decides the threads: BayesianMLP chunks large sample counts itself.
    work = x.shape[0] * sum(p.numel() for p in model.parameters())
    with intra_op_threads(work):
        try:
            if chunk_size is None or chunk_size >= x.shape[0]:
                out = model(x, num_samples, generator=generator, sample=sample)
                loc, scale = out.loc, out.scale
            else:
                # The same weight draws for every chunk: replay the generator state per chunk.
                state = generator.get_state() if generator is not None else None
                seed = None
                if state is None:
                    seed = int(torch.randint(0, 2**62, (1,)).item())
                locs, scales = [], []
                for start in range(0, x.shape[0], chunk_size):
                    g = torch.Generator(device=x.device)
                    if state is not None:
                        g.set_state(state)
                    else:
                        g.manual_seed(seed)
                    out = model(x[start : start + chunk_size], num_samples, generator=g,
                                sample=sample)
                    locs.append(out.loc)
                    scales.append(out.scale.expand_as(out.loc))
                loc, scale = torch.cat(locs, 1), torch.cat(scales, 1)
                if generator is not None:
                    generator.set_state(g.get_state())
        finally:
            model.train(was_training)
    return Prediction(loc, scale.expand_as(loc).contiguous())
