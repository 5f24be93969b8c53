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
# # Quickstart: a Bayesian regularisation path in one training run
#
# This is the README's example with the steps explained: an L2-penalised logistic regression
# on the breast-cancer data (398 training rows, 30 standardised features), whose prior
# precision λ is the hyperparameter.
#
# 1. **Train once.** `AmortizedWBB.run` trains a small generator over λ ~ LogUniform(1e-2, 1e3).
#    Its input is a vector of random observation weights w (and prior noise ξ), its output one
#    *weighted-Bayesian-bootstrap* draw θ(w, ξ, λ) — the minimiser of the randomly weighted
#    objective.
# 2. **Sample anywhere.** `get_samples` draws posteriors on any λ grid inside the training range
#    with forward passes only: a regularisation path with uncertainty bands.
# 3. **Tune with uncertainty.** `tune` evaluates the held-out log density for every draw, so the
#    validation curve comes with its spread over the bootstrap weights and a one-standard-error
#    choice.
# 4. **Check.** `exact_wbb` solves the same draws (same key → same weights and anchors) by
#    Newton's method, so the generator can be compared with the exact bootstrap draw by draw.
#
# Sizes: the README's, except 1500 training steps instead of 3000, so that the documentation
# build, which executes this notebook, stays short (about a minute on 2 CPU cores); 3000 steps
# improve the fidelity at the small-λ end a little. `WBBGEN_SMOKE=1` (the test suite) shrinks
# everything so that it only checks that the cells run — its numbers are then meaningless.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist

import wbbgen
from wbbgen import AmortizedWBB, exact_wbb, format_fidelity, heldout_log_density, plot_path
from wbbgen.datasets import breast_cancer

SMOKE = os.environ.get("WBBGEN_SMOKE") == "1"
if SMOKE:
    NUM_STEPS, NUM_SAMPLES, NUM_EXACT, GRID_SIZE = 30, 50, 20, 8
    SETTINGS = dict(batch_size=32, fidelity_samples=8, num_pilot=4)
else:  # the README's sizes, with half its training steps
    NUM_STEPS, NUM_SAMPLES, NUM_EXACT, GRID_SIZE = 1500, 1000, 200, 20
    SETTINGS = {}
print(f"wbbgen {wbbgen.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}; smoke={SMOKE}")

# %% [markdown]
# ## The model
#
# A NumPyro model that wbbgen can use has three properties (see the how-to guide):
#
# * the observed site sits inside a `numpyro.plate` over observations, so wbbgen can give each
#   observation its own weight;
# * the hyperparameter is a keyword argument (`lam`), traced by JAX, so one compilation serves
#   every λ;
# * the latent sites are continuous.
#
# Here β ~ N(0, I/λ) (λ is a prior precision: the MAP is ridge-penalised logistic regression
# with penalty λ/2 ‖β‖²) and the intercept has a weak N(0, 10²) prior.


# %%
def model(X, y=None, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    b0 = numpyro.sample("b0", dist.Normal(0.0, 10.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b0 + X @ beta), obs=y)


X, y, X_test, y_test, names = breast_cancer()
print(f"train {X.shape}, test {X_test.shape}, dtype {X.dtype}")

# %% [markdown]
# ## Train once over the λ range
#
# `hyper={"lam": ...}` names the keyword and the distribution the generator is trained over;
# query λ values inside its support afterwards (outside it the generator extrapolates and
# wbbgen warns). The default prior scheme is `prior_weight="anchored"`: each bootstrap draw
# centres the prior at a fresh draw from it, which is what makes the spread of the draws match
# the posterior's once the prior matters (see *Concepts*).
#
# `run` makes a few exact pilot solves (they set the generator's output scale), trains, and
# closes with a *fidelity check*: generator draws against exact WBB solves of the same weights
# at 5 λ values.

# %%
infer = AmortizedWBB(model, hyper={"lam": dist.LogUniform(1e-2, 1e3)}, **SETTINGS)
result = infer.run(jax.random.key(0), X, y, num_steps=NUM_STEPS, progress_bar=False)
print({k: round(v, 1) for k, v in result.diagnostics.items() if k.endswith("_s")})
print(format_fidelity(result.fidelity))

# %% [markdown]
# The fidelity table is the check to read: a median sd ratio near 1 means the generator
# reproduces the spread of the exact bootstrap draws at that λ. The training loss (the weighted
# objective per observation) is not a convergence monitor in float32; the fidelity check is.

# %% [markdown]
# ## Posterior draws on a grid
#
# `get_samples` returns a `WBBSamples`: a dict of arrays of shape `(len(grid), num_samples,
# *site_shape)`. Each draw is a forward pass of the generator.

# %%
grid = np.logspace(-2, 3, GRID_SIZE)
samples = infer.get_samples(jax.random.key(1), result, hyper={"lam": grid}, num_samples=NUM_SAMPLES)
print(samples)
print(f"generated in {samples.attrs['wall_time_s'] * 1e3:.0f} ms (first call includes compilation)")

# %% [markdown]
# ## The validation curve, with its uncertainty
#
# `tune` evaluates a criterion for every draw at every grid value — here the mean log
# predictive density of held-out rows — and picks the best λ and the *one-standard-error* λ:
# the most regularised value whose mean criterion is within one standard deviation (over the
# bootstrap weights) of the best. The band is the spread of the criterion over the bootstrap
# weights. (This quickstart tunes on the test rows for brevity; keep a separate validation
# split when you also want an honest test error.)

# %%
tuned = infer.tune(
    jax.random.key(3),
    result,
    criterion=heldout_log_density(X_test, y_test),
    hyper={"lam": grid},
    num_samples=NUM_SAMPLES,
)
print(f"best λ = {tuned.best['lam']:.3g}, one-standard-error λ = {tuned.best_1se['lam']:.3g}")
fig, ax = plt.subplots(figsize=(7, 4.5))
tuned.plot(ax=ax)
plt.show()

# %% [markdown]
# ## The Bayesian regularisation path
#
# Posterior means (lines) and 90 % bands (shaded) of the three coefficients that are largest at
# the chosen λ, over the whole grid. As λ grows the prior shrinks every coefficient to 0 and the
# bands narrow towards the prior's width 1/√λ; at small λ the data alone cannot pin them down
# (the training rows are linearly separable: the likelihood keeps growing along a separating
# direction, and only the prior stops it).

# %%
chosen = tuned.best_1se["lam"]
at_chosen = np.asarray(samples["beta"])[np.argmin(np.abs(grid - chosen))].mean(0)
top = np.argsort(-np.abs(at_chosen))[:3]
fig, ax = plt.subplots(figsize=(7, 4.5))
plot_path(samples, "beta", coords=top, labels=names, selected=chosen, ax=ax)
plt.show()

# %% [markdown]
# ## ArviZ InferenceData with a `lam` dimension
#
# `samples.to_inference_data()` (or `infer.to_inference_data(key, result, hyper=..., num_samples=...)`
# in one step) gives the draws as InferenceData: the posterior has dims `(chain, draw, lam, ...)`,
# plus the per-observation log likelihood, the observed data and per-draw diagnostics. Select a
# λ with `.sel(lam=..., method="nearest")`; compute PSIS-LOO or WAIC per λ slice, never on the
# folded λ × observation axis.

# %%
idata = samples.to_inference_data()
post = idata.posterior["beta"].sel(lam=1.0, method="nearest")
print(f"posterior sd of beta[0:3] at λ ≈ {float(post.lam):.3g}:", post.std(("chain", "draw")).values[:3])

# %% [markdown]
# ## Checking against exact WBB, draw by draw
#
# `exact_wbb` solves every bootstrap draw by damped Newton, warm-started along the λ path, and
# flags draws that did not converge. Called with the same key, grid and number of draws as
# `get_samples`, it uses the same weights and prior anchors, so the two can be compared draw by
# draw: the sd ratio and the per-draw error measure the generator's own error (the bootstrap's
# error against the true posterior is a separate question: see the calibration page).

# %%
key, check_grid = jax.random.key(1), grid[::5]
exact = exact_wbb(key, model, X, y, hyper={"lam": check_grid}, num_samples=NUM_EXACT, progress_bar=False)
gen = np.asarray(infer.get_samples(key, result, hyper={"lam": check_grid}, num_samples=NUM_EXACT)["beta"])
ex = np.asarray(exact["beta"])
print(f"exact draws converged: {np.asarray(exact.stats['converged']).mean():.1%}")
for lam, g, e in zip(exact.hyper["lam"], gen, ex):
    ratio = g.std(0) / e.std(0)
    rmse = np.sqrt(((g - e) ** 2).mean(0)) / e.std(0)
    print(f"λ = {lam:8.3g}: sd ratio (generator / exact) {np.median(ratio):.2f}, rmse / exact sd {np.median(rmse):.2f}")
