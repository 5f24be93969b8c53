# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tuning λ: wbbgen against the tuners people use
#
# One task -- **ridge regression on diabetes with degree-2 features** (p = 65; 256 training,
# 86 validation and 100 test rows) -- tuned by every method of `wbbgen.baselines`: exact grid
# and random search, optuna's TPE and Hyperband, GP-BO (tinygp + expected improvement),
# Lorraine & Duvenaud's hypernetwork hyper-training (global and local), Sinha et al.'s GP
# value function + augmented Lagrangian, Ariafar et al.'s multi-task BO with importance
# sampling, and wbbgen's amortised WBB generator. Every tuner gets the same splits, the same
# inner model (the MAP fit of `wbbgen.models.ridge`) and the same budget in full fits; its
# choice is refitted and scored on the test rows. Wall times include compilation and
# generator training. See `docs/hpo.md` for every method's settings.
#
# Set `WBBGEN_SMOKE=1` for a tiny run (used by the test suite: two methods, one seed, six
# fits; numbers are then meaningless).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from wbbgen.baselines import Budget, compare, evaluate, get_task, markdown_table, plot_traces, summarize

SMOKE = os.environ.get("WBBGEN_SMOKE") == "1"
TASK = "ridge-diabetes"
if SMOKE:
    METHODS, SEEDS, BUDGET = ["grid", "tpe"], [0], Budget(fits=6)
else:
    METHODS, SEEDS, BUDGET = ["all"], [0, 1, 2], Budget(fits=30)
task = get_task(TASK, smoke=SMOKE)
print(task.description)
print(f"methods: {METHODS}, seeds: {SEEDS}, budget: {BUDGET}")

# %% [markdown]
# ## The exact validation curve
#
# The reference every tuner is after: the refitted model's validation and test MSE over a
# fine λ grid (exact MAP fits).

# %%
lams = np.geomspace(task.low[0], task.high[0], 12 if SMOKE else 60)
curve = [evaluate(task, np.log([lam])) for lam in lams]
val = np.array([c["val_loss"] for c in curve])
test = np.array([c["test_loss"] for c in curve])
print(f"validation-optimal λ = {lams[val.argmin()]:.3g} (val MSE {val.min():.0f}, test MSE {test[val.argmin()]:.0f})")
print(f"test-optimal λ = {lams[test.argmin()]:.3g} (test MSE {test.min():.0f})")
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(lams, val, label="validation MSE")
ax.plot(lams, test, label="test MSE")
ax.set_xscale("log")
ax.set_xlabel("λ")
ax.set_ylabel("MSE")
ax.legend()
# %% [markdown]
# ## Every tuner, side by side

# %%
runs = compare(task, METHODS, BUDGET, SEEDS)
summary = summarize(runs)
print(markdown_table(summary, task, BUDGET, SEEDS))

# %% [markdown]
# Test loss of each run's current choice against wall time (the choice refitted; a step is a
# change of choice):

# %%
plot_traces(runs, task=task)
# %% [markdown]
# ## What the generator adds: bands over the bootstrap weights
#
# wbbgen's tuner keeps, for every grid value, the 5-95 % band of the validation loss over the
# WBB draws -- how much the choice of λ would move if the training data were resampled.

# %%
gen_runs = [r for r in runs.get("wbbgen", []) if "error" not in r and "band" in r["info"]]
if gen_runs:
    band = gen_runs[0]["info"]["band"]
    lam_b = np.asarray(band["lam"])[:, 0]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(lam_b, band["val_loss_q05"], band["val_loss_q95"], alpha=0.3, label="5-95 % over w")
    ax.plot(lam_b, band["val_loss_mean"], label="generator: mean over w")
    ax.plot(lams, val, "k--", label="exact refit")
    ax.set_xscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("validation MSE")
    ax.legend()
else:
    print("wbbgen was not run here (smoke size).")
