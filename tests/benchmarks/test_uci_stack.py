"""The UCI splits trained together (``varbayes.benchmarks.uci_stack``) against one at a time.

Nothing here is timed (the speed-up is measured in ``docs/performance.md``). What is checked:
a split's validation curve, choice and test figures do not depend on the other splits trained
beside it beyond floating-point rounding; the test rows never reach the choice; the mini-batch
schedule of large data keeps the number of Adam steps (checkpoints at least as far apart).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from _uci_layout import synthetic_uci as _synthetic
from varbayes.benchmarks.uci import SCHEDULES, _checkpoints, fit_split
from varbayes.benchmarks.uci_run import run_uci_benchmark
from varbayes.benchmarks.uci_stack import (
    FULL_BATCH_ROWS,
    MINI_BATCH,
    STEP_FACTOR,
    fit_splits,
    stackable,
    step_schedule,
)
from varbayes.data import load_uci

UCI = Path(__file__).resolve().parents[3] / "shared" / "data" / "uci"
needs_uci = pytest.mark.skipif(
    not (UCI / "yacht").is_dir(), reason=f"shared UCI data not found at {UCI}"
)


def test_bbb_splits_together_are_the_splits_alone(tmp_path):
    """``bbb`` (no heteroscedastic stage): the whole curve agrees to float32 rounding."""
    _synthetic(tmp_path, n=80, constant=False)
    splits = [load_uci("synth", i, tmp_path) for i in range(2)]
    together = fit_splits(splits, "bbb", quick=True)
    for data, res in zip(splits, together, strict=True):
        alone = fit_split(data, "bbb", quick=True).record
        rec = res.record
        assert rec["stacked"] == 2 and rec["split"] == data.split
        for key in ("stage", "stage_epochs", "n_validation"):
            assert rec["selected"][key] == alone["selected"][key]
        ours = [c["ll"] for c in rec["validation_curve"]]
        theirs = [c["ll"] for c in alone["validation_curve"]]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
        assert rec["ll"] == pytest.approx(alone["ll"], abs=1e-3)
        assert rec["rmse"] == pytest.approx(alone["rmse"], rel=1e-3)


def test_hetero_warm_up_together_is_the_warm_up_alone(tmp_path):
    """``hetero``: the homoscedastic warm-up (frozen noise network) agrees to rounding.

    In the heteroscedastic stage Adam divides the noise network's first gradients (exactly 0
    before the stage, then of the size of rounding for units barely used) by their own size, so
    rounding-level differences can grow there: that stage is compared in the full UCI run
    (``docs/benchmarks.md``), not here.
    """
    _synthetic(tmp_path, n=80, constant=False)
    splits = [load_uci("synth", i, tmp_path) for i in range(2)]
    together = fit_splits(splits, "hetero", quick=True)
    warm = sum(1 for k, *_ in _checkpoints(SCHEDULES["hetero"]) if k < 3)
    for data, res in zip(splits, together, strict=True):
        alone = fit_split(data, "hetero", quick=True).record
        ours = [c["ll"] for c in res.record["validation_curve"][:warm]]
        theirs = [c["ll"] for c in alone["validation_curve"][:warm]]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
        assert len(res.record["validation_curve"]) == len(alone["validation_curve"])


def test_the_cli_default_trains_the_splits_together(tmp_path):
    _synthetic(tmp_path, n=80, constant=False)
    kw = dict(quick=True, progress=False, model="hetero")
    result = run_uci_benchmark(tmp_path, "synth", **kw)
    recs = result["datasets"]["synth"]["splits"]
    assert [r["split"] for r in recs] == [0, 1] and all(r["stacked"] == 2 for r in recs)
    one = run_uci_benchmark(tmp_path, "synth", stacked=False, **kw)["datasets"]["synth"]
    assert all("stacked" not in r for r in one["splits"])
    assert stackable("hetero", 3, 8) and stackable("bbb", 3, 8)
    assert not stackable("mle", 3, 8)
    assert not stackable("hetero", 3, 8, {"batch_size": 32})


def test_data_sets_in_parallel_are_the_data_sets_one_by_one(tmp_path):
    """Two workers give every split the numbers of one worker on one thread, in name order."""
    import torch

    for name in ("b_synth", "a_synth"):
        _synthetic(tmp_path, name, n=80, constant=False)
    kw = dict(quick=True, progress=False, model="hetero")
    together = run_uci_benchmark(tmp_path, "all", workers=2, **kw)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = run_uci_benchmark(tmp_path, "all", workers=1, **kw)
    finally:
        torch.set_num_threads(previous)
    assert list(together["datasets"]) == list(alone["datasets"]) == ["a_synth", "b_synth"]
    for name, entry in alone["datasets"].items():
        for ours, theirs in zip(together["datasets"][name]["splits"], entry["splits"],
                                strict=True):
            assert (ours["ll"], ours["rmse"], ours["selected_epochs"]) == \
                (theirs["ll"], theirs["rmse"], theirs["selected_epochs"])


@needs_uci
def test_test_rows_never_influence_the_choice_of_stacked_splits(tmp_path):
    """Corrupt the test targets of split 0: its choice and curve do not move.

    Those rows are training rows of split 1, trained beside it: split 1 changes, and split 0's
    training does not see that either (the models of a stack are independent).
    """
    shutil.copytree(UCI / "yacht", tmp_path / "yacht")
    data_file = tmp_path / "yacht" / "data.txt"
    data = np.loadtxt(data_file)
    target = int((tmp_path / "yacht" / "index_target.txt").read_text())
    clean = run_uci_benchmark(tmp_path, "yacht", splits=2, quick=True, progress=False)
    rows = np.loadtxt(tmp_path / "yacht" / "index_test_0.txt", dtype=int)
    data[rows, target] = np.random.default_rng(1).permutation(data[rows, target]) * 10 + 100
    np.savetxt(data_file, data)
    dirty = run_uci_benchmark(tmp_path, "yacht", splits=2, quick=True, progress=False)
    (a, a1), (b, b1) = clean["datasets"]["yacht"]["splits"], dirty["datasets"]["yacht"]["splits"]
    assert a["stacked"] == b["stacked"] == 2
    assert a["selected"] == b["selected"]
    assert a["validation_curve"] == b["validation_curve"]
    assert a["ll"] != b["ll"]  # the test figures did see the corruption
    assert a1["validation_curve"] != b1["validation_curve"]  # split 1 trained on those rows


def test_step_schedule_scales_steps_rates_and_checkpoints():
    base = SCHEDULES["hetero"]
    assert step_schedule(base, FULL_BATCH_ROWS) == (base, 1)
    n, f = 36_000, STEP_FACTOR
    schedule, steps = step_schedule(base, n)
    assert steps == -(-n // MINI_BATCH)
    for old, new in zip(base, schedule, strict=True):
        assert new.lr == f * old.lr and old.heteroscedastic == new.heteroscedastic
        # f times the steps (each count rounded up to whole epochs first)
        assert f * old.epochs <= new.epochs * steps < f * (old.epochs + steps)
        assert f * old.check_every <= new.check_every * steps < f * (old.check_every + steps)
    assert step_schedule(base, 2_000_000)[0][0].check_every == f  # at least an epoch apart



def _stopped(curve, patience):
    """Where the library's rule stops a curve: ``patience`` checks after its running best."""
    best, since = -np.inf, 0
    for i, ll in enumerate(curve):
        best, since = (ll, 0) if ll > best else (best, since + 1)
        if since >= patience:
            return i + 1
    return len(curve)


def test_patience_cuts_each_split_where_the_library_rule_stops(tmp_path):
    """``n_iter_no_change``: each split's curve is the full run's, cut where ``BestCheckpoint``
    stops it, and its choice is the best of that part; the same one split at a time.

    ``hetero`` on this fixed data set peaks inside its heteroscedastic stage (the second split
    stops early; a check below makes sure the test sees a cut).
    """
    _synthetic(tmp_path, n=80, constant=False)
    splits = [load_uci("synth", i, tmp_path) for i in range(2)]
    runs = {p: fit_splits(splits, "hetero", quick=True, n_iter_no_change=p) for p in (None, 2)}
    alone = [fit_split(splits[1], "hetero", quick=True, n_iter_no_change=p).record
             for p in (None, 2)]
    cut = False
    for full, short in [*((a.record, b.record) for a, b in zip(runs[None], runs[2],
                                                               strict=True)), alone]:
        whole = [c["ll"] for c in full["validation_curve"]]
        part = [c["ll"] for c in short["validation_curve"]]
        assert part == whole[:_stopped(whole, 2)]
        assert short["selected_epochs"] == short["validation_curve"][part.index(max(part))][
            "epochs"]
        cut |= len(part) < len(whole)
    assert cut


def test_cli_patience_reaches_the_runner(tmp_path, capsys):
    """``varbayes benchmark uci --n-iter-no-change K``: recorded in the protocol and applied
    (the second split's curve is cut, as in the test above); 0 is a one-line usage error."""
    from varbayes.cli import main

    _synthetic(tmp_path, n=80, constant=False)
    out = tmp_path / "p.json"
    assert main(["benchmark", "uci", "--data-dir", str(tmp_path), "--dataset", "synth",
                 "--quick", "--model", "hetero", "--n-iter-no-change", "2",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"]["n_iter_no_change"] == 2
    curves = [len(r["validation_curve"]) for r in result["datasets"]["synth"]["splits"]]
    assert min(curves) < sum(1 for _ in _checkpoints(SCHEDULES["hetero"]))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # argparse rejects the value itself
        main(["benchmark", "uci", "--data-dir", str(tmp_path), "--dataset", "synth",
              "--n-iter-no-change", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--n-iter-no-change" in err and "Traceback" not in err
