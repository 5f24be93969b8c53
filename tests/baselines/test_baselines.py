"""The tuning comparison harness (wbbgen.baselines, issue 5) on the tiny synthetic ridge task.

Reference: the exact validation curve -- the MAP fit at 241 log-spaced λ over the box
[1e-3, 1e3] (40 per decade), its minimiser λ*. Ridge's validation MSE is a smooth, unimodal
function of log λ here (checked below), so any tuner that evaluates the exact curve at a set
of points and keeps the best lands next to λ*: within the largest gap between its points.

Tolerances ("one grid step"):

* tuners that score exact refits (grid, random, TPE, GP-BO, Sinha et al.): one step of a
  half-decade grid, |log₁₀ λ − log₁₀ λ*| ≤ 0.5. The best point of a unimodal curve is one of
  the two points bracketing λ*: grid, 40 fits, spacing 6/39 decades; random, 80 fits, both
  bracketing points lie within 0.5 decades of λ* unless one of two 0.5-decade windows is
  empty, probability ≤ 2·(1 − 0.5/6)^80 ≈ 0.2 % (the seed is fixed, not chosen); TPE gets 40
  fits and GP-BO 16 (their points concentrate near the best so far);
* tuners whose validation losses carry inner-training noise (Hyperband's and Ariafar et
  al.'s SGD, the hypernetworks' and generator's approximation): one step of a decade grid,
  ≤ 1.0. These are slow (training), so they are marked ``slow``.
"""

import json

import numpy as np
import pytest

from wbbgen.baselines import Budget, compare, evaluate, get_task, parse_budget, run_method, summarize
from wbbgen.baselines.harness import METHODS, markdown_table
from wbbgen.baselines.tasks import tiny_ridge


@pytest.fixture(scope="module")
def task():
    return tiny_ridge()


@pytest.fixture(scope="module")
def lam_star(task):
    xs = np.linspace(np.log(1e-3), np.log(1e3), 241)
    vals = np.array([evaluate(task, [x])["val_loss"] for x in xs])
    i = int(np.argmin(vals))
    # unimodal: decreasing then increasing (up to float32 rounding of flat stretches)
    assert np.all(np.diff(vals[: i + 1]) <= 1e-6) and np.all(np.diff(vals[i:]) >= -1e-6)
    assert 2 < i < 238, "the optimum must lie inside the box for this test to mean anything"
    return float(np.exp(xs[i]))


def _decades(x, lam_star):
    return abs(float(np.log10(np.exp(np.asarray(x)[0]))) - np.log10(lam_star))


def _check_trace(run, budget):
    rows = run["trace"]
    assert rows, "empty trace"
    times = [r["time_s"] for r in rows]
    fits = [r["num_fits"] for r in rows]
    assert np.all(np.diff(times) >= 0) and np.all(np.diff(fits) >= 0)
    assert fits[-1] <= budget.fits + 1e-9
    lo, hi = np.log(1e-3) - 1e-6, np.log(1e3) + 1e-6
    for r in rows:
        assert set(r) >= {"time_s", "num_fits", "x", "val_loss", "best_x", "best_val", "test_loss"}
        if np.all(np.isfinite(r["x"])):
            assert lo <= r["x"][0] <= hi
    bests = [r["best_val"] for r in rows if r["best_x"] is not None]
    assert np.all(np.diff(bests) <= 1e-12), "the incumbent's validation loss must not get worse"
    assert np.allclose(run["x"], rows[-1]["best_x"])
    assert run["wall_time_s"] >= times[-1]
    assert np.isfinite(run["test_loss"]) and np.isfinite(run["gap"])


@pytest.mark.parametrize("method, fits", [("grid", 40), ("random", 80), ("tpe", 40), ("gp-bo", 16)])
@pytest.mark.slow
def test_exact_tuners_find_the_validation_optimum(task, lam_star, method, fits):
    budget = Budget(fits=fits)
    run = run_method(task, method, budget, seed=0)
    assert "error" not in run, run.get("traceback")
    _check_trace(run, budget)
    assert _decades(run["x"], lam_star) <= 0.5, (method, np.exp(run["x"]), lam_star)


def test_harness_is_deterministic_for_a_seed(task):
    """Same seed, same choices and traces (tuners called directly on one task, so the
    second call reuses the first's compiled code; ``run_method`` adds only the scoring)."""
    budget = Budget(fits=6)
    for method in ("random", "tpe", "gp-bo", "hyperband"):
        a, b = METHODS[method](task, budget, 3), METHODS[method](task, budget, 3)
        assert np.array_equal(a.x, b.x), method
        assert [r["val_loss"] for r in a.trace] == [r["val_loss"] for r in b.trace], method
        assert [r["x"] for r in a.trace] == [r["x"] for r in b.trace], method
    c = METHODS["random"](task, budget, 4)
    assert not np.array_equal(c.x, METHODS["random"](task, budget, 3).x)


def test_budget_is_respected_and_parsed(task):
    assert parse_budget("30") == Budget(30.0, None)
    assert parse_budget("120s") == Budget(None, 120.0)
    assert parse_budget("30,120s") == Budget(30.0, 120.0)
    with pytest.raises(ValueError, match="budget"):
        parse_budget("thirty")
    with pytest.raises(ValueError, match="fits"):
        Budget().check()
    run = run_method(task, "hyperband", Budget(fits=3), seed=0)
    assert "error" not in run, run.get("traceback")
    assert 3 - 1 / task.epochs - 1e-9 <= run["num_fits"] <= 3 + 1e-9


def test_bad_names_are_refused(task):
    with pytest.raises(ValueError, match="unknown task"):
        get_task("mnist")
    with pytest.raises(ValueError, match="unknown method"):
        compare(task, ["grid", "bohb"], Budget(fits=2), seeds=[0], log=None)


def test_a_failing_tuner_is_recorded_not_raised(task, monkeypatch):
    def broken(task, budget, seed):
        raise RuntimeError("boom")

    monkeypatch.setitem(METHODS, "grid", broken)
    runs = compare(task, ["grid"], Budget(fits=2), seeds=[0], log=None)
    assert "boom" in runs["grid"][0]["error"]
    summary = summarize(runs)
    assert summary["grid"]["num_failed"] == 1
    assert "failed" in markdown_table(summary)


def test_a_failing_tuner_fails_the_smoke_benchmark(tmp_path, monkeypatch):
    """CI runs ``--smoke``: a method that raises must turn it red (a full run records and goes on)."""
    from wbbgen.cli import main

    def broken(task, budget, seed):
        raise RuntimeError("boom")

    monkeypatch.setitem(METHODS, "tpe", broken)
    with pytest.raises(SystemExit, match=r"failed runs in \{'tiny-ridge': \['tpe'\]\}"):
        main(["bench", "hpo", "--task", "tiny-ridge", "--methods", "tpe", "--smoke", "--out", str(tmp_path)])
    assert "boom" in json.loads((tmp_path / "hpo-tiny-ridge.json").read_text())["tpe"]["runs"][0]["error"]


def test_smoke_benchmark_writes_json_table_and_plot(tmp_path):
    from wbbgen.cli import main

    main(["bench", "hpo", "--task", "tiny-ridge", "--methods", "grid", "tpe", "--smoke", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "hpo-tiny-ridge.json").read_text())
    assert set(data) == {"grid", "tpe", "_meta"}
    assert data["grid"]["summary"]["test_loss"]["median"] > 0
    assert len(data["tpe"]["runs"]) == 1 and data["tpe"]["runs"][0]["trace"]
    table = (tmp_path / "hpo.md").read_text()
    assert "| grid |" in table and "val–test gap" in table
    assert (tmp_path / "hpo-tiny-ridge.png").stat().st_size > 0


def test_cli_refuses_hpo_options_for_other_suites():
    from wbbgen.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "perf", "--out", "x", "--task", "ridge-diabetes"])


# ------------------------------------------------------------------ slow: trained tuners
def _trained(task, steps):
    import dataclasses

    settings = {**task.settings, "num_steps": steps, "batch_size": 64, "width": 64, "search_steps": 100}
    return dataclasses.replace(task, settings=settings, epochs=100)


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, tol",
    [
        ("sinha", 0.5),
        ("hyperband", 1.0),
        ("ariafar", 1.0),
        ("lorraine-global", 1.0),
        ("lorraine-local", 1.0),
        ("wbbgen", 1.0),
    ],
)
def test_trained_tuners_find_the_validation_optimum(task, lam_star, method, tol):
    budget = Budget(fits=40)
    run = run_method(_trained(task, 1500), method, budget, seed=0)
    assert "error" not in run, run.get("traceback")
    assert run["trace"] and np.isfinite(run["test_loss"])
    assert _decades(run["x"], lam_star) <= tol, (method, np.exp(run["x"]), lam_star)


@pytest.mark.slow
def test_smoke_benchmark_all_methods(tmp_path):
    from wbbgen.cli import main

    main(["bench", "hpo", "--task", "tiny-ridge", "--methods", "all", "--smoke", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "hpo-tiny-ridge.json").read_text())
    assert set(data) == set(METHODS) | {"_meta"}
    failed = {m: v["summary"].get("errors") for m, v in data.items() if m != "_meta" and v["summary"]["num_failed"]}
    assert not failed, failed
