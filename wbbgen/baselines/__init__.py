"""The tuning comparison harness: tasks, tuners and traces.

A :class:`Task` holds a NumPyro model, fixed train / validation / test splits, a log-uniform
box of hyperparameters and the shared inner model (the MAP fit) every tuner is scored with.
A tuner is a function ``tuner(task, budget, seed) -> TunerResult`` that returns its final
choice (log λ) and a trace -- one row per evaluation: time, fits, λ, its validation loss and
the incumbent. :func:`compare` runs several side by side and refits their choices.

Tuners (``METHODS``): ``grid``, ``random`` (:mod:`.search`), ``tpe`` and ``gp-bo``
(:mod:`.bo`), ``hyperband`` (:mod:`.hyperband`), ``lorraine-global`` and ``lorraine-local``
(:mod:`.lorraine`), ``sinha`` (:mod:`.sinha`), ``ariafar`` (:mod:`.ariafar`) and ``wbbgen``
(:mod:`.generative`). Tasks (:func:`get_task`): ``ridge-diabetes``, ``logistic-cancer``,
``digits-softmax``, ``digits-mlp`` (and ``digits-mlp-layers``, ``tiny-ridge``).

Needs the ``hpo`` extra (optuna, tinygp). Example (about ten minutes on a CPU, so not a doctest)::

    from wbbgen.baselines import Budget, compare, get_task, markdown_table, summarize

    runs = compare(get_task("ridge-diabetes"), ["grid", "tpe", "wbbgen"], Budget(fits=30), seeds=[0, 1, 2])
    print(markdown_table(summarize(runs)))
"""

from wbbgen.baselines.harness import METHODS, compare, markdown_table, plot_traces, run_method, summarize
from wbbgen.baselines.task import Task, evaluate
from wbbgen.baselines.tasks import TASKS, get_task
from wbbgen.baselines.trace import Budget, Recorder, TunerResult, parse_budget

__all__ = [
    "Task",
    "evaluate",
    "TASKS",
    "get_task",
    "Budget",
    "Recorder",
    "TunerResult",
    "parse_budget",
    "METHODS",
    "run_method",
    "compare",
    "summarize",
    "markdown_table",
    "plot_traces",
]
