"""Scrambled Sobol normals (varbayes.nn.qmc): exact marginals, determinism, the dimension cap."""

from __future__ import annotations

import torch

from varbayes.nn.qmc import MAX_DIMS, sobol_normals


def test_each_coordinate_of_1024_points_hits_every_cell_once() -> None:
    """The exact stratification of a scrambled Sobol sequence, kept by the inverse CDF.

    The first 2^m points of each coordinate fall one in each interval [k / 2^m, (k+1) / 2^m)
    (a (0, m, 1)-net); through Phi they are one normal per 1/1024 quantile cell. Deterministic.
    """
    z = sobol_normals(1024, 300, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert z is not None and z.shape == (1024, 300) and z.dtype == torch.float64
    cells = (torch.special.ndtr(z) * 1024).floor().long()
    assert torch.equal(cells.sort(0).values, torch.arange(1024).unsqueeze(1).expand(1024, 300))
    assert bool(torch.isfinite(z).all()) and float(z.abs().max()) <= 6.01


def test_the_generator_state_fixes_the_points_and_advances_by_one_draw() -> None:
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    first = sobol_normals(64, 10, g)
    after = g.get_state()
    g.set_state(state)
    assert torch.equal(first, sobol_normals(64, 10, g))  # type: ignore[arg-type]
    g.set_state(state)
    torch.randint(0, 2**62, (1,), generator=g)  # the one draw of the scrambling seed
    assert torch.equal(g.get_state(), after)
    other = sobol_normals(64, 10, torch.Generator().manual_seed(6))
    assert first is not None and other is not None and not torch.equal(first, other)


def test_above_the_engines_dimensions_it_returns_none_and_draws_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert sobol_normals(4, MAX_DIMS + 1, g) is None
    assert torch.equal(g.get_state(), state)
