"""save/load of any network: identical predictions, clear errors, nothing unpickled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from varbayes import io
from varbayes.nn import GaussianHead, bayesianize
from varbayes.predictive import predictive


class Net(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 3, padding=1)
        self.norm = nn.BatchNorm1d(2)
        self.fc = nn.Linear(2 * 5, width)
        self.out = nn.Linear(width, 2)
        self.head = GaussianHead()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.relu(self.norm(self.conv(x[:, None, :]))).flatten(1)
        return self.head(self.out(torch.relu(self.fc(h))))


def _converted(width: int = 8) -> nn.Module:
    with pytest.warns(UserWarning, match="deterministic"):
        return bayesianize(Net(width), init="default", generator=torch.Generator().manual_seed(0))


def test_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    net = _converted()
    x = torch.randn(7, 5)
    before = predictive(net, x, 100, generator=torch.Generator().manual_seed(3))
    io.save(net, tmp_path / "m", metadata={"note": "converted"})
    loaded = io.load(tmp_path / "m", module=_converted())
    after = predictive(loaded, x, 100, generator=torch.Generator().manual_seed(3))
    assert torch.equal(before.loc, after.loc) and torch.equal(before.scale, after.scale)
    assert loaded.metadata == {"note": "converted"}
    with pytest.raises(FileExistsError):
        io.save(net, tmp_path / "m")
    io.save(net, tmp_path / "m", force=True)


def test_mismatched_module_and_tampered_directory(tmp_path: Path) -> None:
    io.save(_converted(), tmp_path / "m")
    with pytest.raises(ValueError, match=r"'fc.weight_loc' has shape \(10, 8\).*\(10, 4\)"):
        io.load(tmp_path / "m", module=_converted(width=4))
    with pytest.raises(ValueError, match="missing tensors.*unexpected tensors"):
        io.load(tmp_path / "m", module=Net())  # not converted
    with pytest.raises(ValueError, match="was saved from"):
        io.load(tmp_path / "m", module=nn.Linear(2, 2))
    with pytest.raises(ValueError, match="without module="):
        io.load(_fitted_dir(tmp_path), module=Net())
    # a pickle instead of safetensors is refused without being unpickled
    torch.save(_converted().state_dict(), tmp_path / "m" / "model.safetensors")
    with pytest.raises(ValueError, match="never unpickles"):
        io.load(tmp_path / "m", module=_converted())
    config = tmp_path / "m" / "config.json"
    doc = json.loads(config.read_text())
    doc["format_version"] = 99
    config.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="format_version"):
        io.load(tmp_path / "m", module=_converted())


def test_non_finite_values_are_refused(tmp_path: Path) -> None:
    net = _converted()
    with torch.no_grad():
        net.fc.weight_loc[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        io.save(net, tmp_path / "m")


def _fitted_dir(tmp_path: Path) -> Path:
    import numpy as np

    from varbayes.kinds import fit

    x = np.linspace(-1, 1, 20)[:, None]
    fitted, _ = fit("mle", x, x[:, 0], epochs=2, generator=torch.Generator().manual_seed(0))
    return io.save(fitted, tmp_path / "fitted")
