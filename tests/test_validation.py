"""Array, target and DataFrame checks of ``varbayes._validation``, and its on/off switch."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import varbayes._validation as V
from varbayes._validation import (
    check_array,
    check_target,
    check_X_y,
    feature_names_of,
    is_validation_enabled,
    set_validation,
    validation_enabled,
)


def test_all_names_importable() -> None:
    for name in V.__all__:
        assert hasattr(V, name), name


# --------------------------------------------------------------------------- check_array: good


def test_list_of_lists_becomes_float64_2d() -> None:
    out = check_array([[1, 2], [3, 4]])
    assert out.dtype == np.float64
    assert out.shape == (2, 2)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int64, np.uint16, np.float16, np.float32])
def test_dtypes_are_cast_to_float64(dtype: type) -> None:
    a = np.array([[1, 0], [0, 1]], dtype=dtype)
    out = check_array(a)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1.0, 0.0], [0.0, 1.0]])


def test_returns_a_copy_not_a_view() -> None:
    a = np.ones((3, 2))
    out = check_array(a)
    out[0, 0] = 5.0
    assert a[0, 0] == 1.0


def test_read_only_array_gives_writeable_result() -> None:
    a = np.arange(6.0).reshape(3, 2)
    a.setflags(write=False)
    out = check_array(a)
    assert out.flags.writeable
    np.testing.assert_array_equal(out, a)


def test_memmap(tmp_path) -> None:
    mm = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="w+", shape=(4, 3))
    mm[:] = np.arange(12, dtype=np.float32).reshape(4, 3)
    mm.flush()
    ro = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="r", shape=(4, 3))
    out = check_array(ro)
    assert type(out) is np.ndarray
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.arange(12.0).reshape(4, 3))


def test_non_contiguous_numpy() -> None:
    a = np.arange(24.0).reshape(4, 6)
    for view in (a[:, ::2], a.T, np.asfortranarray(a)):
        out = check_array(view)
        assert out.flags.c_contiguous
        np.testing.assert_array_equal(out, view)


def test_torch_tensor_with_grad_non_contiguous() -> None:
    t = torch.arange(6.0).reshape(2, 3).requires_grad_(True)
    out = check_array(t.t())
    assert out.shape == (3, 2)
    assert out.flags.c_contiguous and out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int32, torch.bool])
def test_torch_dtypes(dtype: torch.dtype) -> None:
    out = check_array(torch.ones(2, 2, dtype=dtype))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.ones((2, 2)))


def test_single_row_and_single_column_accepted() -> None:
    assert check_array([[1.0, 2.0, 3.0]]).shape == (1, 3)
    assert check_array([[1.0], [2.0]]).shape == (2, 1)


def test_subnormal_and_extreme_but_representable_scales() -> None:
    a = np.array([[1e-310, 1e6], [1e-6, 3e38]])
    np.testing.assert_array_equal(check_array(a), a)


def test_numeric_strings_are_converted() -> None:
    out = check_array(np.array([["1.5", "2"], ["3", "-4e1"]], dtype=object))
    np.testing.assert_array_equal(out, [[1.5, 2.0], [3.0, -40.0]])


def test_allow_1d_gives_single_column() -> None:
    out = check_array([1, 2, 3], allow_1d=True)
    assert out.shape == (3, 1)


# --------------------------------------------------------------------------- check_array: bad


def test_sparse_rejected_with_hint() -> None:
    with pytest.raises(TypeError, match=r"sparse.*X\.toarray\(\)"):
        check_array(sp.csr_matrix(np.eye(3)))


def test_sparse_torch_rejected() -> None:
    with pytest.raises(TypeError, match=r"to_dense"):
        check_array(torch.eye(3).to_sparse())


def test_complex_rejected() -> None:
    with pytest.raises(ValueError, match="Complex data not supported: X has complex dtype"):
        check_array(np.array([[1 + 2j, 0]]))
    with pytest.raises(ValueError, match="Complex data not supported: X has complex dtype"):
        check_array(torch.ones(2, 2, dtype=torch.complex64))


def test_string_column_names_index_and_value() -> None:
    X = np.array([[1.0, "a"], [2.0, "b"]], dtype=object)
    with pytest.raises(ValueError, match=r"X column 1 is not numeric: it contains 'a' at row 0"):
        check_array(X)


@pytest.mark.parametrize("cell", [{"foo": "bar"}, [1, 2], object()])
def test_object_cell_that_is_no_number_or_string_is_type_error(cell: object) -> None:
    X = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=object)
    X[1, 0] = cell
    # float()'s wording (scikit-learn's check_dtype_object) plus the cell at fault
    with pytest.raises(
        TypeError, match=r"X column 0 holds a \w+ at row 1.*argument must be a string or a real"
    ):
        check_array(X)


def test_unicode_array_bad_value_reported() -> None:
    X = np.array([["1", "2"], ["3", "oops"]])
    with pytest.raises(ValueError, match=r"column 1 .*'oops' at row 1"):
        check_array(X)


def test_none_cell_counts_as_nan() -> None:
    X = np.array([[1.0, 2.0], [None, 3.0]], dtype=object)
    with pytest.raises(ValueError, match=r"1 non-finite value\(s\) \(NaN: 1.*at row 1, column 0"):
        check_array(X)


class NAType:
    """Stands in for pandas.NA, which float() refuses."""

    def __repr__(self) -> str:
        return "<NA>"


def test_pandas_like_na_is_a_missing_value() -> None:
    X = np.array([[1.0, 2.0], [3.0, NAType()]], dtype=object)
    with pytest.raises(ValueError, match=r"X column 1 has a missing value \(<NA>\) at row 1"):
        check_array(X)


def test_none_is_type_error() -> None:
    with pytest.raises(TypeError, match="X is None"):
        check_array(None)


@pytest.mark.parametrize(
    ("value", "counts"),
    [(np.nan, "NaN: 1, \\+inf: 0, -inf: 0"), (np.inf, "NaN: 0, \\+inf: 1, -inf: 0"),
     (-np.inf, "NaN: 0, \\+inf: 0, -inf: 1")],
)  # fmt: skip
def test_non_finite_reports_count_and_first_position(value: float, counts: str) -> None:
    X = np.zeros((4, 3))
    X[2, 1] = value
    X[3, 2] = value
    with pytest.raises(
        ValueError, match=rf"2 non-finite value\(s\) \({counts.replace('1', '2')}\)"
    ):
        check_array(X)
    with pytest.raises(ValueError, match=r"at row 2, column 1"):
        check_array(X)


def test_non_finite_mixed_counts() -> None:
    X = np.array([[np.nan, 1.0], [np.inf, -np.inf]])
    with pytest.raises(ValueError, match=r"3 non-finite value\(s\) \(NaN: 1, \+inf: 1, -inf: 1\)"):
        check_array(X)


def test_float32_overflow_rejected() -> None:
    X = np.array([[1.0, 2.0], [1e308, 3.0]])
    with pytest.raises(ValueError, match=r"float32.*1e\+308 at row 1, column 0"):
        check_array(X)


def test_zero_rows_and_zero_columns() -> None:
    with pytest.raises(ValueError, match=r"X has 0 rows \(shape \(0, 3\)\)"):
        check_array(np.zeros((0, 3)))
    msg = r"X has 0 columns: 0 feature\(s\) \(shape=\(3, 0\)\) while a minimum of 1 is required"
    with pytest.raises(ValueError, match=msg):
        check_array(np.zeros((3, 0)))
    with pytest.raises(ValueError, match=r"X has 0 columns: 0 feature\(s\) \(shape=\(1, 0\)\)"):
        check_array([[]])
    with pytest.raises(ValueError, match=r"X is empty \(shape \(0,\)\)"):
        check_array([])


@pytest.mark.parametrize("scalar", [3.0, 5, np.float64(2.0), "abc"])
def test_scalar_rejected(scalar: object) -> None:
    with pytest.raises(ValueError, match="got a scalar"):
        check_array(scalar)


def test_1d_rejected_with_reshape_hint() -> None:
    with pytest.raises(
        ValueError, match=r"Reshape your data with X\.reshape\(-1, 1\).*reshape\(1, -1\)"
    ):
        check_array(np.arange(3.0))


def test_3d_rejected() -> None:
    with pytest.raises(ValueError, match=r"got 3-D shape \(2, 2, 2\)"):
        check_array(np.zeros((2, 2, 2)))


def test_ragged_list_rejected() -> None:
    with pytest.raises(ValueError, match="ragged"):
        check_array([[1, 2], [3]])


def test_datetime_rejected() -> None:
    with pytest.raises(TypeError, match="unsupported dtype"):
        check_array(np.array([["2020-01-01"]], dtype="datetime64[D]"))


def test_custom_name_in_messages() -> None:
    with pytest.raises(ValueError, match=r"^X_test contains"):
        check_array([[np.nan]], "X_test")


# --------------------------------------------------------------------------- DataFrames


class _FakeFrame:
    """Duck-typed DataFrame (pandas is optional)."""

    def __init__(self, data: dict[str, list[object]]) -> None:
        self._data = data
        self.columns = list(data)

    def to_numpy(self) -> np.ndarray:
        return np.array(list(zip(*self._data.values(), strict=True)), dtype=object)


def test_duck_typed_frame_names_and_values() -> None:
    df = _FakeFrame({"a": [1, 2], "b": [3.5, 4.5]})
    assert feature_names_of(df) == ["a", "b"]
    np.testing.assert_array_equal(check_array(df), [[1.0, 3.5], [2.0, 4.5]])


def test_duck_typed_frame_bad_column_named() -> None:
    df = _FakeFrame({"a": [1, 2], "city": ["x", "y"]})
    with pytest.raises(ValueError, match=r"column 1 \('city'\) is not numeric: it contains 'x'"):
        check_array(df)


def test_feature_names_none_for_arrays() -> None:
    assert feature_names_of(np.ones((2, 2))) is None
    assert feature_names_of([[1.0]]) is None


def test_pandas_dataframe_and_series() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x1": [1, 2, 3], 7: [0.5, 1.5, 2.5]})
    assert feature_names_of(df) == ["x1", "7"]
    np.testing.assert_array_equal(check_array(df), [[1, 0.5], [2, 1.5], [3, 2.5]])
    with pytest.raises(ValueError, match=r"column 1 \('s'\) is not numeric"):
        check_array(pd.DataFrame({"a": [1.0, 2.0], "s": ["u", "v"]}))
    np.testing.assert_array_equal(check_target(pd.Series([1, 2, 3]), 3), [1.0, 2.0, 3.0])


# --------------------------------------------------------------------------- targets


def test_target_shapes_accepted() -> None:
    np.testing.assert_array_equal(check_target([1, 2, 3], 3), [1.0, 2.0, 3.0])
    out = check_target(np.array([[1], [2], [3]]), 3)
    assert out.shape == (3,) and out.dtype == np.float64
    assert check_target(torch.tensor([[1.0], [2.0]], requires_grad=True), 2).shape == (2,)


def test_target_int_and_extreme_scale() -> None:
    np.testing.assert_array_equal(check_target(np.array([1, 2]) * 10**9, 2), [1e9, 2e9])


def test_target_multi_output_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"multi-output targets are not supported \(got shape \(3, 2\)"
    ):
        check_target(np.ones((3, 2)), 3)


def test_target_length_mismatch_names_both_lengths() -> None:
    with pytest.raises(ValueError, match=r"y has 4 samples but X has 3 rows"):
        check_target(np.ones(4), 3)


def test_target_non_finite() -> None:
    y = np.array([0.0, 1.0, np.nan, np.inf])
    with pytest.raises(ValueError, match=r"y contains 2 non-finite value\(s\).*at row 2\."):
        check_target(y, 4)


def test_target_non_numeric() -> None:
    with pytest.raises(ValueError, match=r"y is not numeric: it contains 'b' at row 1"):
        check_target(["1", "b", "2"], 3)


def test_target_scalar_3d_empty_complex_sparse() -> None:
    with pytest.raises(ValueError, match="scalar"):
        check_target(1.0, 1)
    with pytest.raises(ValueError, match=r"got shape \(2, 1, 1\)"):
        check_target(np.ones((2, 1, 1)), 2)
    with pytest.raises(ValueError, match="y is empty"):
        check_target(np.ones(0), 0)
    with pytest.raises(ValueError, match="Complex data not supported: y has complex"):
        check_target(np.ones(2, dtype=complex), 2)
    with pytest.raises(TypeError, match="toarray"):
        check_target(sp.csr_matrix(np.ones((2, 1))), 2)


def test_check_X_y() -> None:
    X, y = check_X_y([[1, 2], [3, 4]], [[5], [6]])
    assert X.shape == (2, 2) and y.shape == (2,)
    with pytest.raises(ValueError, match="y has 3 samples but X has 2 rows"):
        check_X_y([[1, 2], [3, 4]], [1, 2, 3])
    with pytest.raises(ValueError, match="reshape"):
        check_X_y([1, 2], [1, 2])
    assert check_X_y([1, 2], [1, 2], allow_1d=True)[0].shape == (2, 1)
    with pytest.raises(ValueError, match=r"^x contains"):
        check_X_y([[np.nan]], [1.0], names=("x", "y"))
    with pytest.raises(ValueError, match="target has 3 samples but x has 2 rows"):
        check_X_y([[1], [2]], [1, 2, 3], names=("x", "target"))


# --------------------------------------------------------------------------- switch


def test_validation_switch_and_context_manager() -> None:
    original = is_validation_enabled()
    assert original is __debug__
    try:
        set_validation(False)
        assert is_validation_enabled() is False
        with validation_enabled():
            assert is_validation_enabled() is True
            with validation_enabled(False):
                assert is_validation_enabled() is False
            assert is_validation_enabled() is True
        assert is_validation_enabled() is False
    finally:
        set_validation(original)
    assert is_validation_enabled() is original


def test_context_manager_restores_on_error() -> None:
    before = is_validation_enabled()
    with pytest.raises(RuntimeError), validation_enabled(not before):
        raise RuntimeError
    assert is_validation_enabled() is before


def test_set_validation_type() -> None:
    with pytest.raises(TypeError, match="bool flag, got int 1"):
        set_validation(1)  # type: ignore[arg-type]


def test_user_checks_run_when_switch_off() -> None:
    with validation_enabled(False), pytest.raises(ValueError, match="non-finite"):
        check_array([[np.nan]])
