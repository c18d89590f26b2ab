"""What the bad-input cases share: the data, both front doors, and the CLI runner."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from varbayes import io
from varbayes.cli import main
from varbayes.estimator import BayesianRegressor
from varbayes.kinds import FittedModel, fit

RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 2))
Y = X[:, 0] - X[:, 1] + 0.1 * RNG.normal(size=20)
FAST: dict[str, Any] = dict(epochs=2, hidden=4, num_samples=5, random_state=0)


def _est(**kw: Any) -> BayesianRegressor:
    return BayesianRegressor(**{**FAST, **kw})


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _fn(X: Any, y: Any = Y, kind: str = "hetero", **kw: Any) -> FittedModel:
    """A functional fit; ``hetero`` as one network (the cases probe a network's numerics)."""
    kw = {"epochs": 2, "hidden": [4], **({"n_members": 1} if kind == "hetero" else {}), **kw}
    return fit(kind, X, y, generator=_g(), **kw)[0]


def _finite(*arrays: Any) -> None:
    for a in arrays:
        assert np.isfinite(np.asarray(a.detach() if isinstance(a, torch.Tensor) else a)).all()


def _fits(X: Any, y: Any = Y, **kw: Any) -> list[Callable[[], Any]]:
    """Both front doors: the estimator and the functional API."""
    return [lambda: _est(**kw).fit(X, y), lambda: _fn(X, y, **kw)]


def _ok(X: Any, y: Any = Y) -> list[Callable[[], Any]]:
    def est() -> None:
        _finite(*_est().fit(X, y).predict(X, return_std=True))

    def fn() -> None:
        pred = _fn(X, y).predict(X, 5, generator=_g())
        _finite(pred.mean, pred.std)

    return [est, fn]


@dataclass
class Ctx:
    tmp: Path
    est: BayesianRegressor
    fm: FittedModel
    model: Path
    capsys: Any

    def csv(self, text: str, name: str = "d.csv") -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def run(self, *argv: object) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def saved(self, name: str = "m") -> Path:
        return io.save(self.fm, self.tmp / name)


def _rows(x: np.ndarray, y: np.ndarray) -> str:
    lines = (",".join(repr(float(v)) for v in (*a, b)) for a, b in zip(x, y, strict=True))
    return "".join(line + "\n" for line in lines)


GOOD_CSV = "a,b,y\n" + _rows(X, Y)
ROWS = _rows(X[1:], Y[1:])


def _fit_csv(c: Ctx, text: str, *extra: object) -> tuple[int, str, str]:
    data = c.csv(text)
    return c.run("fit", data, "--target", "y", "--epochs", 2, "--hidden", 4, *extra,
                 "--out", c.tmp / "m")  # fmt: skip


def _predict_csv(c: Ctx, text: str, model: Path | None = None) -> tuple[int, str, str]:
    return c.run("predict", model or c.model, c.csv(text, "in.csv"), "--samples", 5,
                 "--out", c.tmp / "p.csv")  # fmt: skip


def _fit_flags(c: Ctx, *flags: object) -> tuple[int, str, str]:
    return c.run("fit", c.csv(GOOD_CSV), "--target", "y", "--epochs", 2, "--hidden", 4, *flags,
                 "--out", c.tmp / "m")  # fmt: skip


def _ok_run(result: tuple[int, str, str], note: str) -> tuple[int, str, str]:
    assert result[0] == 0, result[2]
    return 0, result[1], note


#: A row's library calls: each raises the row's exception or, if accepted, returns.
LibCalls = Callable[[Ctx], list[Callable[[], Any]]]
#: A row's CLI run: (exit code, stdout, stderr or the note of an accepted row).
CliRun = Callable[[Ctx], tuple[int, str, str]]
