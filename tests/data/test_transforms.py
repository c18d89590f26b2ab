from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import varbayes.data.transforms as T
from varbayes._validation import validation_enabled
from varbayes.data.transforms import Standardizer


def test_all_names_importable() -> None:
    for name in T.__all__:
        assert hasattr(T, name), name


def test_init_buffers() -> None:
    st = Standardizer(3)
    assert st.mean.dtype == torch.float64 and st.std.dtype == torch.float64  # issue 13, item 3
    assert torch.equal(st.mean, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(st.std, torch.ones(3, dtype=torch.float64))
    assert set(st.state_dict()) == {"mean", "std"}
    assert list(st.parameters()) == []
    assert "num_features=3" in repr(st)


@pytest.mark.parametrize("bad", [0, -1])
def test_init_rejects_bad_num_features(bad: int) -> None:
    with pytest.raises(ValueError, match=r"num_features must be in the range \[1, inf\)"):
        Standardizer(bad)


def test_init_rejects_float_num_features() -> None:
    with pytest.raises(TypeError, match="num_features must be an int"):
        Standardizer(2.0)  # type: ignore[arg-type]


def test_fit_matches_numpy_population_std() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[3.0, -2.0], scale=[5.0, 0.1], size=(200, 2))
    st = Standardizer(2).fit(torch.as_tensor(x))
    np.testing.assert_allclose(st.mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.std.numpy(), x.std(0, ddof=0), rtol=1e-12)
    z = st.transform(torch.as_tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(z.mean(0).numpy(), [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(z.std(0, unbiased=False).numpy(), [1.0, 1.0], atol=1e-5)


def test_fit_returns_self_and_accepts_numpy() -> None:
    st = Standardizer(1)
    assert st.fit(np.array([[1.0], [3.0]])) is st
    assert st.mean.item() == 2.0 and st.std.item() == 1.0


def test_round_trip() -> None:
    x = torch.tensor([[1.0, 10.0], [2.0, 30.0], [4.0, 50.0]])
    st = Standardizer(2).fit(x)
    torch.testing.assert_close(st.inverse_transform(st.transform(x)), x)


def test_constant_column_maps_to_zero() -> None:
    x = torch.tensor([[5.0, 1.0], [5.0, 2.0], [5.0, 3.0]])
    st = Standardizer(2).fit(x)
    assert st.std[0].item() == 1.0
    z = st.transform(x)
    assert torch.isfinite(z).all()
    assert torch.equal(z[:, 0], torch.zeros(3))


def test_single_row_gives_unit_std() -> None:
    st = Standardizer(2).fit(torch.tensor([[3.0, -4.0]]))
    assert torch.equal(st.std, torch.ones(2))
    assert torch.equal(st.transform(torch.tensor([[3.0, -4.0]])), torch.zeros(1, 2))


def test_tiny_relative_std_treated_as_constant() -> None:
    x = torch.tensor([[1e6], [1e6 + 1e-8]], dtype=torch.float64)  # std 5e-9 < 1e-12 * 1e6
    with pytest.warns(T.PrecisionWarning, match="column 0 varies by less than 1e-12"):
        assert Standardizer(1).fit(x).std.item() == 1.0
    y = torch.tensor([[0.0], [2e-6]], dtype=torch.float64)  # small but genuine
    assert Standardizer(1).fit(y).std.item() == pytest.approx(1e-6)


@pytest.mark.parametrize("scale", [1e6, 1e-6])
def test_extreme_scales(scale: float) -> None:
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64) * scale
    st = Standardizer(1).fit(x)
    z = st.transform(x)
    torch.testing.assert_close(z.squeeze(1), torch.tensor([-1.2247, 0.0, 1.2247]).double(),
                               atol=1e-4, rtol=0)  # fmt: skip


def test_statistics_computed_in_float64() -> None:
    # Offsets that float32 accumulation would lose.
    x = torch.full((1000, 1), 1e7, dtype=torch.float64)
    x[::2] += 1.0
    st = Standardizer(1).fit(x)
    assert st.std.item() == pytest.approx(0.5, rel=1e-6)


def test_fit_errors() -> None:
    with pytest.raises(ValueError, match=r"expects x of shape \(n, 2\), got shape \(3, 3\)"):
        Standardizer(2).fit(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="0 rows"):
        Standardizer(2).fit(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="non-finite data, first at row 1, column 0"):
        Standardizer(2).fit(torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]))
    with pytest.raises(ValueError, match="float32 range"):
        Standardizer(1).fit(torch.tensor([[1e300], [-1e300]], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"shape \(n, 3\), got shape \(4,\)"):
        Standardizer(3).fit(torch.zeros(4))


def test_one_dimensional_inputs_for_single_feature() -> None:
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    st = Standardizer(1).fit(y)
    z = st.transform(y)
    assert z.shape == (4,)
    torch.testing.assert_close(st.inverse_transform(z), y)
    s = torch.ones(2, 4)  # (S, n) stacks broadcast too
    torch.testing.assert_close(st.inverse_scale(s), s * st.std.float())  # s's dtype
    torch.testing.assert_close(st.inverse_var(s), s * st.std.float() ** 2)


def test_inverse_scale_and_var() -> None:
    st = Standardizer(2).fit(torch.tensor([[0.0, 0.0], [2.0, 20.0]]))  # std 1 and 10
    s = torch.tensor([[1.0, 1.0], [0.5, 2.0]])
    torch.testing.assert_close(st.inverse_scale(s), torch.tensor([[1.0, 10.0], [0.5, 20.0]]))
    torch.testing.assert_close(st.inverse_var(s), torch.tensor([[1.0, 100.0], [0.5, 200.0]]))
    z = torch.zeros(1, 2)
    torch.testing.assert_close(st.inverse_transform(z), torch.tensor([[1.0, 10.0]]))


def test_leading_sample_dimension() -> None:
    st = Standardizer(2).fit(torch.tensor([[0.0, 0.0], [2.0, 20.0]]))
    z = torch.zeros(5, 3, 2)
    out = st.inverse_transform(z)
    assert out.shape == (5, 3, 2)
    assert torch.equal(out[4, 2], torch.tensor([1.0, 10.0]))


@pytest.mark.parametrize(
    "method", ["transform", "inverse_transform", "inverse_scale", "inverse_var"]
)
def test_shape_mismatch_rejected(method: str) -> None:
    st = Standardizer(3)
    with pytest.raises(ValueError, match=r"must have shape \(\.\.\., 3\).*got shape \(4, 1\)"):
        getattr(st, method)(torch.zeros(4, 1))


def test_dtype_follows_input() -> None:
    st = Standardizer(1).fit(torch.tensor([[1.0], [3.0]]))
    assert st.transform(torch.tensor([[2.0]], dtype=torch.float64)).dtype == torch.float64
    assert st.transform(torch.tensor([[2.0]])).dtype == torch.float32
    assert st.transform(torch.tensor([[2]])).dtype == torch.get_default_dtype()


def test_transform_non_finite_checked_only_when_validating() -> None:
    st = Standardizer(1)
    bad = torch.tensor([[float("inf")]])
    with validation_enabled(True), pytest.raises(ValueError, match="non-finite"):
        st.transform(bad)
    with validation_enabled(False):
        assert torch.isinf(st.transform(bad)).all()


def test_forward_is_transform() -> None:
    st = Standardizer(1).fit(torch.tensor([[0.0], [4.0]]))
    x = torch.tensor([[4.0]])
    assert torch.equal(st(x), st.transform(x))


def test_state_dict_round_trip() -> None:
    st = Standardizer(2).fit(torch.tensor([[1.0, 5.0], [3.0, 9.0]]))
    buf = io.BytesIO()
    torch.save(st.state_dict(), buf)
    buf.seek(0)
    fresh = Standardizer(2)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(fresh.mean, st.mean) and torch.equal(fresh.std, st.std)
    x = torch.tensor([[2.0, 7.0]])
    assert torch.equal(fresh.transform(x), st.transform(x))


def test_state_dict_tensors_are_plain_contiguous() -> None:
    st = Standardizer(4).fit(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)))
    for value in st.state_dict().values():
        assert value.is_contiguous() and value.dtype == torch.float64 and value.shape == (4,)


def test_safetensors_round_trip(tmp_path) -> None:
    st_mod = pytest.importorskip("safetensors.torch")
    st = Standardizer(2).fit(torch.tensor([[1.0, 5.0], [3.0, 9.0]]))
    st_mod.save_file(st.state_dict(), str(tmp_path / "s.safetensors"))
    fresh = Standardizer(2)
    fresh.load_state_dict(st_mod.load_file(str(tmp_path / "s.safetensors")))
    assert torch.equal(fresh.std, st.std) and torch.equal(fresh.mean, st.mean)


def test_load_state_dict_wrong_shape() -> None:
    st = Standardizer(2)
    with pytest.raises(RuntimeError, match="size mismatch"):
        st.load_state_dict({"mean": torch.zeros(3), "std": torch.ones(3)})
