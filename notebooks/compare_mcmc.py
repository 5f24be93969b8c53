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
# # Amortised WBB vs exact WBB vs NUTS over a λ grid
#
# Two models, each fitted three ways at every λ of a log grid over [1e-2, 1e3]:
#
# * **NUTS** (`wbbgen.nuts_reference`, BlackJAX, 4 chains) — the reference posterior;
# * **exact WBB** (`wbbgen.exact_wbb`) — every weighted-bootstrap draw solved by Newton;
# * **amortised WBB** (`wbbgen.AmortizedWBB`) — one generator trained over λ ~ LogUniform(1e-2, 1e3),
#   then sampled at every λ; same key as the exact path, so both see identical weights and anchors.
#
# Models: **ridge on diabetes** (10 standardised features, y scaled to unit sd, Gaussian
# likelihood with an unknown noise sd σ ~ HalfNormal(1): a constrained site, anchored on log σ) and
# **logistic regression on breast cancer** (30 features, `wbbgen.demo.logistic_model`).
# Prior scheme: `anchored` (the default; see `docs/calibration.md` for the scheme study).
#
# Calibration: `wbbgen.calibration` compares every marginal with NUTS (sd ratio, 90 % coverage,
# mean shift, with Monte Carlo standard errors); the target band is sd ratio ∈ [0.9, 1.1] and
# coverage ∈ [0.85, 0.95]. Wall times of the three paths are measured in this run; first calls
# include JAX compilation.
#
# Set `WBBGEN_SMOKE=1` for a tiny run (used by the test suite; numbers are then meaningless).

# %%
import os
import time
import warnings

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

import wbbgen
from wbbgen import AmortizedWBB, calibration, exact_wbb, nuts_reference, plot_calibration, summarize
from wbbgen.datasets import breast_cancer, diabetes
from wbbgen.demo import logistic_model

SMOKE = os.environ.get("WBBGEN_SMOKE") == "1"
if SMOKE:
    GRID = np.array([0.1, 100.0])
    NUM_SAMPLES, NUM_STEPS, BATCH = 50, 20, 16
    NUTS = dict(num_chains=1, num_warmup=50, num_samples=50)
    ROWS, COLS = 60, 3
else:
    GRID = np.logspace(-2, 3, 6)
    NUM_SAMPLES, NUM_STEPS, BATCH = 1000, 10_000, 256
    NUTS = dict(num_chains=4, num_warmup=1000, num_samples=1000)
    ROWS, COLS = None, None
print(f"wbbgen {wbbgen.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}; smoke={SMOKE}")
print(f"λ grid: {GRID}")


# %% [markdown]
# ## Data and models


# %%
def ridge_model(X, y=None, *, lam=1.0):
    """β ~ N(0, I/λ), σ ~ HalfNormal(1), y ~ N(Xβ, σ²) (y centred and scaled, no intercept)."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


d = diabetes()
y_scale = d.y_train.std()
diabetes_data = (jnp.asarray(d.X_train[:ROWS, :COLS]), jnp.asarray(d.y_train[:ROWS] / y_scale))
b = breast_cancer()
cancer_data = (jnp.asarray(b.X_train[:ROWS, :COLS]), jnp.asarray(b.y_train[:ROWS]))
problems = {"diabetes ridge": (ridge_model, diabetes_data), "breast-cancer logistic": (logistic_model, cancer_data)}
for name, (_, (X, _y)) in problems.items():
    print(f"{name}: n = {X.shape[0]}, p = {X.shape[1]}")


# %% [markdown]
# ## The three paths, timed


# %%
def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(jax.tree_util.tree_leaves(dict(out)) if isinstance(out, dict) else out)
    return out, time.perf_counter() - t0


keys = jax.random.split(jax.random.key(0), 3)
runs, timings = {}, []
for name, (model, data) in problems.items():
    with warnings.catch_warnings(record=True) as caught:  # NUTS diagnostics are shown, not raised
        warnings.simplefilter("always")
        ref, t_nuts = timed(nuts_reference, keys[0], model, *data, hyper={"lam": GRID}, progress_bar=False, **NUTS)
    for w in caught:
        if issubclass(w.category, wbbgen.ReferenceDiagnosticsWarning):
            print(f"{name}: {w.message}")
    exact, t_exact = timed(
        exact_wbb, keys[1], model, *data, hyper={"lam": GRID}, num_samples=NUM_SAMPLES, progress_bar=False
    )
    print(f"{name}: exact WBB converged {np.mean(exact.stats['converged']):.3f}")
    infer = AmortizedWBB(model, hyper={"lam": dist.LogUniform(1e-2, 1e3)}, batch_size=BATCH, fidelity_samples=0)
    result, t_train = timed(infer.run, keys[2], *data, num_steps=NUM_STEPS, progress_bar=False)
    gen, t_gen_first = timed(infer.get_samples, keys[1], result, hyper={"lam": GRID}, num_samples=NUM_SAMPLES)
    gen, t_gen = timed(infer.get_samples, keys[1], result, hyper={"lam": GRID}, num_samples=NUM_SAMPLES)
    runs[name] = {"reference": ref, "exact": exact, "generator": gen, "result": result}
    timings.append(
        {
            "model": name,
            "NUTS grid (s)": t_nuts,
            "exact WBB grid (s)": t_exact,
            "generator training (s)": t_train,
            "generator eval, first call (s)": t_gen_first,
            "generator eval, warm (s)": t_gen,
        }
    )
pd.DataFrame(timings).set_index("model").round(3)

# %% [markdown]
# Each row: NUTS = `len(GRID)` × (4 chains × (warm-up + draws)); exact WBB = `len(GRID)` ×
# `NUM_SAMPLES` Newton solves, warm-started along λ; the generator is trained once and then
# answers any λ (a warm call draws the whole grid). Training pays off against exact WBB only
# when many λ values (or continuous λ queries) are needed: see RESEARCH.md §3.

# %% [markdown]
# ## Calibration against NUTS

# %%
cals, tables = {}, []
for name, r in runs.items():
    for path in ("exact", "generator"):
        cal = calibration(r[path].to_inference_data(log_likelihood=False), r["reference"])
        cals[name, path] = cal
        t = summarize(cal)[["sd_ratio", "coverage_90", "mean_shift"]]
        t["max |mean shift|"] = np.abs(cal.mean_shift).max("param").values
        t["sd ratio mcse"] = cal.sd_ratio_mcse.median("param").values
        tables.append(t.assign(model=name, path=path).reset_index())
table = pd.concat(tables).set_index(["model", "path", "lam"]).round(3)
table

# %% [markdown]
# Medians over the coordinates (β and σ or b0). The generator row mixes two errors: the WBB
# scheme's (same as the exact row) and the generator's fit to the exact WBB (compare the two
# rows at the same λ: they use identical draws).

# %%
fig, axes = plt.subplots(len(problems), 2, figsize=(10, 3.3 * len(problems)), squeeze=False, constrained_layout=True)
for row, name in zip(axes, problems):
    for path, color in (("exact", "C0"), ("generator", "C3")):
        n_lines = [len(a.lines) for a in row]
        plot_calibration(cals[name, path], ax=row)
        for a, nl in zip(row, n_lines):
            for line in a.lines[nl:]:
                if line.get_marker() not in (None, "None", ""):
                    line.set_color(color)
                    line.set_label(f"{path} WBB")
    for a in row:
        a.set_title(f"{name}: {a.get_title()}", fontsize="medium")
        handles = [h for h in a.get_lines() if h.get_label().endswith("WBB")]
        a.legend(handles=handles, fontsize="small")
plt.show()

# %% [markdown]
# ## Generator vs exact WBB on identical draws
#
# The same key gives the same bootstrap weights and anchors to both paths, so their difference
# isolates the generator's approximation error.

# %%
rows = []
for name, r in runs.items():
    for site in r["exact"]:
        e = np.asarray(r["exact"][site], np.float64).reshape(len(GRID), NUM_SAMPLES, -1)
        g = np.asarray(r["generator"][site], np.float64).reshape(len(GRID), NUM_SAMPLES, -1)
        for k, lam in enumerate(GRID):
            ratio = g[k].std(0) / e[k].std(0)
            shift = np.abs(g[k].mean(0) - e[k].mean(0)) / e[k].std(0)
            rows.append(
                {
                    "model": name,
                    "site": site,
                    "lam": lam,
                    "sd ratio gen/exact (median)": np.median(ratio),
                    "max |mean diff| / sd": shift.max(),
                }
            )
pd.DataFrame(rows).set_index(["model", "site", "lam"]).round(3)
