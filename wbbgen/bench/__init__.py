"""The benchmarks shipped with wbbgen, one module per benchmark, each run as ``wbbgen bench NAME``.

* :mod:`wbbgen.bench.perf` -- the performance targets P1-P6 (``wbbgen bench perf``), with
  :mod:`wbbgen.bench.perf.recipes` (``p6-recipes``);
* :mod:`wbbgen.bench.calibration` -- WBB against reference posteriors per prior scheme, with
  :mod:`wbbgen.bench.hierarchical` (eight schools, a random intercept), :mod:`wbbgen.bench.posteriordb`
  (posteriordb reference posteriors),
  :mod:`wbbgen.bench.sbc` (simulation-based calibration) and :mod:`wbbgen.bench.sigma_check`;
* :mod:`wbbgen.bench.hpo` -- the tuning comparison against the tuners of :mod:`wbbgen.baselines`;
* :mod:`wbbgen.bench.hypertrain` -- local hyper-training against random search;
* :mod:`wbbgen.bench.tuning_reference` -- wbbgen's choice of λ against exact grids;
* :mod:`wbbgen.bench.nuts_grid` -- the grid strategies of :func:`wbbgen.nuts_reference`;
* :mod:`wbbgen.bench.harness` -- timings, device description and child-process memory.

Each module's ``main(argv)`` parses its own options (``wbbgen bench NAME --help``) and writes
its JSON and markdown into ``--out``; ``--smoke`` runs tiny sizes that check the pipeline.
"""
