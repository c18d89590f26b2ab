"""The device option (issue 12): resolution, and fit / predict / save / load on every device
this machine has (CUDA cases are skipped where there is none)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from varbayes import BayesianRegressor, io
from varbayes._device import generator_on, resolve_device
from varbayes.cli import main
from varbayes.kinds import fit

HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="no CUDA"))]


def _data(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(n, 2))
    return x, x[:, 0] - 0.5 * x[:, 1] + 0.2 * rng.normal(size=n)


def test_names_resolve() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu0")
    with pytest.raises(TypeError, match="device must be a str"):
        resolve_device(3)  # type: ignore[arg-type]
    assert generator_on(torch.device("cpu"), 5).initial_seed() == 5


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here")
def test_cuda_without_cuda_is_a_clear_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _data()
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit("mle", x, y, epochs=2, device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        BayesianRegressor("mle", epochs=2, device="cuda").fit(x, y)
    data = tmp_path / "d.csv"
    np.savetxt(data, np.column_stack([x, y]), delimiter=",", header="a,b,y", comments="")
    code = main(["fit", str(data), "--target", "y", "--model", "mle", "--epochs", "2",
                 "--device", "cuda", "--out", str(tmp_path / "m")])
    assert code == 2 and "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("device", DEVICES)
def test_fit_predict_save_load_on_the_device(device: str, tmp_path: Path) -> None:
    x, y = _data()
    fitted, _ = fit("hetero", x, y, epochs=5, hidden=[8], device=device,
                    generator=torch.Generator().manual_seed(0))
    assert fitted.device.type == device
    gen = torch.Generator(fitted.device).manual_seed(1)
    pred = fitted.predict(x, 20, generator=gen)
    assert pred.loc.device.type == device and bool(torch.isfinite(pred.quantile(0.5)).all())
    path = io.save(fitted, tmp_path / "m")
    loaded = io.load(path)  # device-independent files, the CPU by default
    assert loaded.device.type == "cpu"
    again = io.load(path, map_location=device)
    a = fitted.predict(x, 20, generator=torch.Generator(fitted.device).manual_seed(1))
    b = again.predict(x, 20, generator=torch.Generator(again.device).manual_seed(1))
    assert torch.equal(a.loc, b.loc)


@pytest.mark.parametrize("device", [*DEVICES, "auto"])
def test_estimator_device_is_a_parameter_resolved_at_fit(device: str) -> None:
    x, y = _data()
    reg = BayesianRegressor("bbb", epochs=5, hidden=8, num_samples=10, random_state=0,
                            device=device)
    assert reg.get_params()["device"] == device
    lower, upper = reg.fit(x, y).predict_interval(x)
    assert (lower <= upper).all() and reg.model_.device.type in ("cpu", "cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_cli_device_flags(device: str, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _data()
    data = tmp_path / "d.csv"
    np.savetxt(data, np.column_stack([x, y]), delimiter=",", header="a,b,y", comments="")
    model, out = tmp_path / "m", tmp_path / "p.csv"
    assert main(["fit", str(data), "--target", "y", "--epochs", "5", "--hidden", "8",
                 "--samples", "20", "--device", device, "--out", str(model)]) == 0
    assert main(["predict", str(model), str(data), "--device", device, "--out", str(out)]) == 0
    assert main(["evaluate", str(model), str(data), "--device", device, "--json"]) == 0
    capsys.readouterr()
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(y) and all(float(r["lower"]) <= float(r["upper"]) for r in rows)
