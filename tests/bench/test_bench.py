"""``wbbgen bench``: the dispatch to the benchmarks of :mod:`wbbgen.bench` and the perf harness
(its table of targets, failures, smoke verdicts, partial runs and the JSON the docs read), with
stand-in targets so that nothing is trained here (CI's ``make bench-smoke`` runs the real ones)."""

import json

import pytest

from wbbgen.bench import perf
from wbbgen.bench.perf import Target
from wbbgen.cli import BENCHMARKS, main


def test_bench_help_lists_every_benchmark(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BENCHMARKS)


def test_perf_help_lists_the_targets_and_their_goals(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "perf", "--help"])
    out = capsys.readouterr().out
    for target in perf.TARGETS:
        assert target.name in out and target.goal.split(":")[0] in out


def test_unknown_benchmark_and_unknown_target_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "no-such-benchmark"])
    assert exit_.value.code == 2 and "no-such-benchmark" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "perf", "--only", "P9", "--out", "unused"])
    assert exit_.value.code == 2 and "P9" in capsys.readouterr().err


def test_every_target_has_smoke_and_full_sizes_for_its_function():
    import inspect

    for target in perf.TARGETS:
        params = set(inspect.signature(target.run).parameters) - {"shared"}
        assert set(target.smoke) == set(target.full) == params, target.name


def _fake(name, figure, goal=1.0):
    """A stand-in target: figure × size seconds, or an error when ``figure`` is None."""

    def run(shared, *, size):
        if figure is None:
            raise RuntimeError(f"{name} broke")
        shared[name] = size
        return {"figure": figure * size, "unit": "s", "goal": goal, "met": figure * size <= goal, "device": "cpu"}

    return Target(name, f"{name}: at most {goal} s", run, smoke={"size": 1}, full={"size": 2})


def test_perf_run_records_failures_and_keeps_going(tmp_path, capsys):
    targets = (_fake("X1", 0.5), _fake("X2", None), _fake("X3", 0.25))
    results = perf.run(tmp_path, targets=targets)
    assert results["X1"]["figure"] == 1.0 and results["X1"]["met"] is True  # full size: size 2
    assert results["X2"]["figure"] is None and "X2 broke" in results["X2"]["error"]
    assert results["X3"]["figure"] == 0.5
    on_disk = json.loads((tmp_path / "perf.json").read_text())
    assert set(on_disk) == {"X1", "X2", "X3", "smoke", "jax", "started"}
    for key in ("X1", "X3"):  # the fields docs/_ext/wbbgen_docs.py reads
        assert {"figure", "unit", "goal", "met", "device"} <= set(on_disk[key])
    table = (tmp_path / "perf.md").read_text()
    assert "| X2 | error: RuntimeError: X2 broke |" in table and "| X3 | 0.5 |" in table


def test_perf_smoke_does_not_judge_and_a_partial_run_keeps_the_others(tmp_path):
    targets = (_fake("X1", 0.5), _fake("X3", 2.0))
    first = perf.run(tmp_path, smoke=True, targets=targets)
    assert first["X1"]["met"] is None and first["X1"]["met_at_smoke_size"] is True
    again = perf.run(tmp_path, smoke=True, only=["X3"], targets=(_fake("X1", 9.0), _fake("X3", 3.0)))
    assert again["X1"]["figure"] == 0.5 and again["X3"]["figure"] == 3.0
    other_size = perf.run(tmp_path, only=["X3"], targets=targets)  # a full run does not keep smoke figures
    assert other_size["X1"]["note"].startswith("not run") and other_size["X1"]["figure"] is None


def test_perf_sizes_override_the_table(tmp_path):
    results = perf.run(tmp_path, targets=(_fake("X1", 0.5),), sizes={"X1": {"size": 10}})
    assert results["X1"]["figure"] == 5.0
    with pytest.raises(ValueError, match="only: unknown targets"):
        perf.run(tmp_path, only=["X7"], targets=(_fake("X1", 0.5),))


def test_render_only_reads_the_published_results(tmp_path, capsys):
    """The committed full-size perf.json renders with every target's figure beside its goal."""
    import shutil
    from pathlib import Path

    published = Path(__file__).resolve().parents[2] / "docs" / "_static" / "perf" / "perf.json"
    shutil.copy(published, tmp_path / "perf.json")
    main(["bench", "perf", "--render-only", "--out", str(tmp_path)])
    table = (tmp_path / "perf.md").read_text()
    assert table == capsys.readouterr().out.rstrip("\n") + "\n"
    for target in perf.TARGETS:
        assert f"| {target.name} | " in table
    assert (tmp_path / "perf_times.png").stat().st_size > 0 and (tmp_path / "perf_p3.png").stat().st_size > 0
