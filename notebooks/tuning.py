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
# # Tuning with uncertainty: curves, paths and many hyperparameters
#
# Diabetes progression with degree-2 features (p = 65, `wbbgen.datasets.diabetes(degree=2)`),
# Bayesian ridge regression (`wbbgen.models.ridge`, σ = 1 so that λ is scikit-learn's ridge
# penalty α). One generator is trained over λ ∈ [1, 10⁴]; then
#
# 1. **validation curves with bands**: the held-out log density on a validation split and
#    10-fold CV by weight deletion, each a mean over WBB draws with its spread, the best and
#    the one-standard-error λ marked;
# 2. **gradient search** through the generator (Lorraine & Duvenaud's global scheme);
# 3. **the Bayesian regularisation path**: posterior mean and 90 % band of each coefficient
#    against λ, the chosen λ marked;
# 4. **local hyper-training** of one prior precision *per feature* (65 hyperparameters),
#    with and without a hyper-prior, validation and test loss against wall time.
#
# Set `WBBGEN_SMOKE=1` for a tiny run (used by the test suite; numbers are then meaningless).

# %%
import os
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
import numpyro.distributions as dist
from sklearn.model_selection import train_test_split

import wbbgen
from wbbgen import models
from wbbgen.datasets import diabetes
from wbbgen.hypertrain import local_hypertrain

SMOKE = os.environ.get("WBBGEN_SMOKE") == "1"
NUM_STEPS = 200 if SMOKE else 6000
HT_STEPS = 40 if SMOKE else 3000

s = diabetes(degree=2)
X_fit, X_val, y_fit, y_val = train_test_split(s.X_train, s.y_train, test_size=0.25, random_state=0)
print(f"fit {X_fit.shape}, validation {X_val.shape}, test {s.X_test.shape}")

# %% [markdown]
# ## Train once over λ
# The degree-2 features include an exactly collinear pair (sex² is affine in sex), so below
# λ ≈ 1 the float32 solves are ill-posed; the range starts there.

# %%
# cv_folds=10: half the training draws delete one of 10 fixed folds, so the generator learns
# the zero weights that cross-validation by deletion feeds it (below).
infer = wbbgen.AmortizedWBB(
    models.ridge, hyper={"lam": dist.LogUniform(1.0, 1e4)}, fidelity_samples=0 if SMOKE else 64, cv_folds=10
)
t0 = time.perf_counter()
result = infer.run(jax.random.key(0), X_fit, y_fit, num_steps=NUM_STEPS, progress_bar=False)
print(f"trained in {time.perf_counter() - t0:.1f} s")
if result.fidelity is not None:
    print(wbbgen.format_fidelity(result.fidelity))

# %% [markdown]
# ## Validation curve with bands
# `tune` evaluates the criterion for every draw at every grid value: the band is its spread
# over the bootstrap weights. The one-standard-error choice is the most regularised λ whose
# mean is within one sd of the best.

# %%
grid = np.logspace(0, 4, 33)
tuned = infer.tune(
    jax.random.key(1), result, criterion=wbbgen.heldout_log_density(X_val, y_val), hyper={"lam": grid}, num_samples=500
)
print("best", tuned.best, "one-standard-error", tuned.best_1se)
tuned.plot()
plt.show()

# %% [markdown]
# ## 10-fold cross-validation by weight deletion
# Each fold's rows get weight zero; the generator gives the draws without them at once. It
# uses the 10 folds the generator was trained to delete (`cv_folds=10` above).

# %%
cv, cv_values = wbbgen.kfold_cv(infer, jax.random.key(2), result, hyper={"lam": grid}, num_samples=200)
lam_cv = float(grid[int(np.argmax(cv["mean"].values))])
print(f"10-fold CV through the generator picks λ = {lam_cv:.3g}")
wbbgen.plot_curve(grid, cv_values, ylabel="10-fold CV log density", selected=lam_cv)
plt.show()

# %% [markdown]
# ## Gradient search through the generator
# λ follows the gradient of the validation log density through g, from four starts; steps are
# kept inside the training support.

# %%
gs = wbbgen.gradient_search(infer, jax.random.key(3), result, X_val, y_val, num_steps=50 if SMOKE else 300)
print("gradient search:", gs.best, "validation log density", round(gs.value, 4))

# %% [markdown]
# ## Bayesian regularisation path
# Posterior mean and 90 % band of the ten largest coefficients against λ, the CV choice marked.

# %%
path = infer.get_samples(jax.random.key(4), result, hyper={"lam": np.logspace(0, 4, 41)}, num_samples=300)
top = np.argsort(-np.abs(path["beta"][0].mean(0)))[:10]
wbbgen.plot_path(path, "beta", coords=top, selected=lam_cv, labels=s.feature_names)
plt.show()

# %% [markdown]
# ## Local hyper-training: one prior precision per feature
# `local_hypertrain` alternates a generator step (λ drawn near the current λ̂) and a step of
# log λ̂ on the validation loss through the generator (Lorraine & Duvenaud, Alg. 3). With 65
# hyperparameters and 86 validation rows the validation loss can be overfitted; a hyper-prior
# log λ ~ N(log λ₀, τ²) is the remedy. Here the noise sd is set to the data's (σ = sd(y), so
# the losses are in nats per row and the hyper-prior's weight is meaningful; the precisions
# are then α/σ²). Both runs start at the CV choice.

# %%
sigma = float(y_fit.std())
runs = {}
for label, tau in [("no hyper-prior", None), ("hyper-prior τ = 1", 1.0)]:
    runs[label] = local_hypertrain(
        jax.random.key(5),
        models.ridge,
        X_fit,
        y_fit,
        sigma=sigma,
        hyper={"lam": np.full(X_fit.shape[1], lam_cv / sigma**2)},
        val_args=(X_val, y_val),
        val_kwargs={"sigma": sigma},
        test_args=(s.X_test, s.y_test),
        test_kwargs={"sigma": sigma},
        num_steps=HT_STEPS,
        chunk_size=20 if SMOKE else 100,
        hyper_prior_scale=tau,
        num_pilot=4 if SMOKE else 16,
        progress_bar=False,
    )
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharex=True)
for label, r in runs.items():
    axes[0].plot(r.trace["time"], r.trace["val_loss"], label=label)
    axes[1].plot(r.trace["time"], r.trace["test_loss"], label=label)
axes[0].set(xlabel="wall time (s)", ylabel="validation NLL per row")
axes[1].set(xlabel="wall time (s)", ylabel="test NLL per row")
axes[0].legend()
plt.show()
for label, r in runs.items():
    lam = r.hyper["lam"]
    print(
        f"{label}: val {r.trace['val_loss'][0]:.2f} -> {r.trace['val_loss'][-1]:.2f}, "
        f"test {r.trace['test_loss'][0]:.2f} -> {r.trace['test_loss'][-1]:.2f}, "
        f"λ̂ range [{lam.min():.3g}, {lam.max():.3g}]"
    )
