"""The bad-input table (docs/bad-inputs.md), one parametrised case per row.

Each case calls wbbgen with one bad input and checks what wbbgen says: the exception (or
warning) class and a regex on its message. A few rows are inputs that look suspicious but
work (a prior with no location under ``"anchored"``); their case checks the outcome.
``test_table_matches_the_cases`` parses the doc and fails when a row has no case (or a
case no row), or when the class the doc names differs from the one the case expects.
"""

import os
import re
import shutil
from collections.abc import Callable
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pandas as pd
import pytest
import test_io  # tests/ is on sys.path (pytest's default "prepend" import mode); see Ctx.trained
from numpyro.distributions import constraints

import wbbgen
import wbbgen.io as wio
import wbbgen.persist.checkpoint as ckpt
from wbbgen import AmortizedWBB, ExtrapolationWarning, FunctionModel, exact_wbb
from wbbgen import weights as W
from wbbgen.problem import make_problem

DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "bad-inputs.md")
N, P = 30, 4
H = {"lam": dist.LogUniform(0.1, 10.0)}


def ridge(X, y=None, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def _latent(X, lam):
    return numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))


def no_plate(X, y, *, lam=1.0):
    beta = _latent(X, lam)
    numpyro.sample("y", dist.Normal(X @ beta, 1.0).to_event(1), obs=y)


def plate_of_5(X, y, *, lam=1.0):
    beta = _latent(X, lam)
    with numpyro.plate("data", 5):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0).to_event(1), obs=y)


def discrete_latent(X, y, *, lam=1.0):
    numpyro.sample("k", dist.Bernoulli(0.5))
    ridge(X, y, lam=lam)


def rounded(X, y, *, lam=1.0):
    beta = _latent(X, lam)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ jnp.round(beta), 1.0), obs=y)


def nan_branch(X, y, *, lam=1.0):
    beta = _latent(X, lam)  # the untaken sqrt branch is NaN below 10: so is its gradient
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ jnp.where(beta > 10.0, jnp.sqrt(beta - 10.0), beta), 1.0), obs=y)


def no_latent(X, y, *, lam=1.0):
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(lam * X.sum(1), 1.0), obs=y)


def subsampled(X, y, *, lam=1.0):
    beta = _latent(X, lam)
    with numpyro.plate("data", X.shape[0], subsample_size=10) as idx:
        numpyro.sample("y", dist.Normal(X[idx] @ beta, 1.0), obs=y[idx])


def nested_plates(X, y, *, lam=1.0):
    beta = _latent(X, lam)
    with numpyro.plate("cols", 1, dim=-2), numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def two_sizes(X, y, *, lam=1.0):
    beta = _latent(X, lam)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)
    with numpyro.plate("other", 5):
        numpyro.sample("z", dist.Normal(beta[0], 1.0), obs=jnp.zeros(5))


def other_model(X, y=None, *, lam=1.0):
    ridge(X, y, lam=lam)


def scale_and_flat_priors(X, y, *, lam=1.0):
    """An unpenalised intercept (flat), Normal coefficients, and the noise sd of each half of
    the rows under a HalfNormal and an Exponential prior (neither has a location)."""
    b0 = numpyro.sample("b0", dist.ImproperUniform(constraints.real, (), ()))
    beta = _latent(X, lam)
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    tau = numpyro.sample("tau", dist.Exponential(1.0))
    scale = jnp.where(jnp.arange(X.shape[0]) < X.shape[0] // 2, sigma, tau)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(b0 + X @ beta, scale), obs=y)


def bernoulli(X, y=None, *, lam=1.0):
    beta = _latent(X, lam)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


def poisson(X, y=None, *, lam=1.0):
    beta = _latent(X, lam)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(X @ beta)), obs=y)


def group_sizes(X, g, y=None, *, lam=1.0):
    """A random intercept per group, the number of groups read from g."""
    a = numpyro.sample("a", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([int(g.max()) + 1]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(a[g], 1.0), obs=y)


def lam_branch(X, y=None, *, lam=1.0):
    beta = _latent(X, lam if lam > 1 else 1.0)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def factor_outside_plate(X, y=None, *, lam=1.0):
    beta = _latent(X, lam)
    numpyro.factor("ll", dist.Normal(X @ beta, 1.0).log_prob(y))


def masked_ridge(X, y, m, *, lam=1.0):
    beta = _latent(X, lam)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y, obs_mask=m)


def masked_values_used(X, y, m, *, lam=1.0):
    beta = _latent(X, lam)
    with numpyro.plate("data", X.shape[0]):
        full = numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y, obs_mask=m)
        numpyro.sample("z", dist.Normal(full, 1.0), obs=y)


FM = FunctionModel(
    lambda th, X, y: -0.5 * (y - X @ th["b"]) ** 2,
    lambda th, lam: -0.5 * lam * jnp.sum(th["b"] ** 2),
    {"b": jnp.zeros(P)},
)


def scheme(n, sample=None, expand=None, num_weights=None):
    """A user's WeightScheme whose sample/expand can be broken on purpose."""
    k = n if num_weights is None else num_weights
    return W.WeightScheme(
        "user", n, k, sample or (lambda key, b=(): jax.random.exponential(key, (*b, k))), expand or (lambda v: v)
    )


class Ctx:
    """Shared, lazily built inputs: data, the trained result of test_io.py (with checkpoints
    and a saved copy), and helpers that call wbbgen with one argument changed."""

    def __init__(self, tmp):
        self.tmp = tmp
        k1, k2 = jax.random.split(jax.random.key(0))
        self.X = jax.random.normal(k1, (N, P))
        self.y = self.X @ jnp.array([1.0, -2.0, 0.5, 0.0]) + jax.random.normal(k2, (N,))

    def exact(self, *args, model=ridge, hyper=None, **kwargs):
        args = args or (self.X, self.y)
        kwargs = {"num_samples": 4, "progress_bar": False, **kwargs}
        return exact_wbb(jax.random.key(0), model, *args, hyper=hyper or {"lam": [1.0]}, **kwargs)

    def infer(self, model=ridge, **options):
        return AmortizedWBB(
            model,
            **{
                "hyper": H,
                "prior_weight": "fixed",
                "fidelity_samples": 0,
                "num_pilot": 4,
                "chunk_size": 10,
                "batch_size": 8,
                "generator_options": {"width": 8, "depth": 1},
                **options,
            },
        )

    def run(self, *args, model=ridge, options=None, key=0, **kwargs):
        args = args or (self.X, self.y)
        kwargs = {"num_steps": 20, "progress_bar": False, **kwargs}
        return self.infer(model, **(options or {})).run(jax.random.key(key), *args, **kwargs)

    @property
    def trained(self):
        """test_io.py's small trained run (one compile-heavy run serves both modules): 40
        rows, 3 coefficients, 40 steps, checkpoints every 20, λ ~ LogUniform(0.01, 100)."""
        return test_io.trained()

    def samples(self, hyper, result=None, infer=None, num_samples=4):
        result = self.trained.result if result is None else result
        return (infer or test_io.make_infer()).get_samples(
            jax.random.key(1), result, hyper=hyper, num_samples=num_samples
        )

    def checkpoint_dir(self, damage=None):
        """A copy of the trained run's checkpoint folder, its checkpoint damaged by ``damage``."""
        d = self.tmp / f"ckpt-{len(os.listdir(self.tmp))}"
        shutil.copytree(self.trained.checkpoint_dir, d)
        if damage is not None:
            path = ckpt.latest_checkpoint(d)
            with open(path, "rb") as f:
                damaged = damage(f.read(), path)
            with open(path, "wb") as f:
                f.write(damaged)
        return d

    def resume(self, d, y=None, **kwargs):
        """Resume the trained run from ``d`` (its settings, data and key; ``y`` or keywords changed)."""
        run = self.trained
        kwargs = {"num_steps": test_io.NUM_STEPS, "progress_bar": False, **kwargs}
        return test_io.make_infer().run(
            jax.random.key(1), run.X, run.y if y is None else y, checkpoint_dir=d, resume=True, **kwargs
        )

    def load(self, path=None, model=ridge, *args):
        run = self.trained
        return wio.load(run.path if path is None else path, model, *(args or (run.X, run.y)))

    def truncated_copy(self):
        path = self.tmp / "truncated.wbb"
        path.write_bytes(self.trained.path.read_bytes()[:-1])
        return path

    @cached_property
    def scale_draws(self):
        return self.exact(model=scale_and_flat_priors)

    @property
    def g(self):
        return np.arange(N) % 3

    @property
    def half(self):
        return np.arange(N) % 2 == 0

    def exact_key(self, key):
        return exact_wbb(key, ridge, self.X, self.y, hyper={"lam": [1.0]}, progress_bar=False)


def _rewrite(change=None, format_version=wio.FORMAT_VERSION):
    def damage(raw, path):
        header, payload = wio.read_container(path)
        return wio.assemble({**header, **(change or {})}, payload, format_version=format_version)

    return damage


def _flip(raw, path):
    out = bytearray(raw)
    out[len(out) // 2] ^= 0xFF
    return bytes(out)


def _check_scale_priors(s):
    assert s.stats["converged"].all()
    assert np.all(s["sigma"] > 0) and np.all(s["tau"] > 0) and np.all(np.isfinite(s["b0"]))


def _check_flat_anchor(ctx):
    obj = make_problem(scale_and_flat_priors, (ctx.X, ctx.y), {}, ("lam",), "exponential", "anchored").objective
    shift, _ = jax.jit(obj.anchor)(jax.random.key(0), {"lam": jnp.asarray(1.0)}, obj.data)
    shift = np.asarray(shift)  # sites in sorted order: b0, beta (P), sigma, tau
    assert shift.shape == (P + 3,) and shift[0] == 0.0  # the flat intercept has no anchor...
    assert np.all(shift[1:] != 0.0)  # ...every other site has one
    return ctx.scale_draws


class Case(NamedTuple):
    id: str
    call: Callable[[Ctx], Any]
    expect: type | None  # exception or warning class; None: the call works
    match: str = ""
    check: Callable[[Any], None] | None = None


CASES = [
    # ---- data
    Case("data-nan", lambda c: c.exact(c.X, c.y.at[3].set(jnp.nan)), ValueError, r"the data contain NaN or inf"),
    Case("data-inf", lambda c: c.run(c.X.at[0, 0].set(jnp.inf), c.y), ValueError, r"the data contain NaN or inf"),
    Case(
        "data-lengths",
        lambda c: c.exact(c.X, c.y[:25]),
        ValueError,
        r"observed site 'y' has value shape \(25,\) .* no axis of length 30 at dim -1 for plate 'data'",
    ),
    Case(
        "data-column-y",
        lambda c: c.exact(c.X, c.y[:, None]),
        ValueError,
        r"value shape \(30, 1\) .* no axis of length 30",
    ),
    Case(
        "data-mixed-float",
        lambda c: c.exact(c.X.astype(jnp.float32), c.y),
        TypeError,
        r"the data mix floating dtypes \['float32', 'float64'\]",
    ),
    Case("data-missing", lambda c: c.exact(c.X), ValueError, r"the model has no observed site"),
    Case(
        "data-missing-discrete",
        lambda c: c.exact(c.X, model=bernoulli),
        ValueError,
        r"the model has no observed site .* 'y' \(plate 'data'\) would be observed: the data for it were not passed",
    ),
    Case(
        "data-outside-support",
        lambda c: c.exact(c.X, 1.0 + (c.y > 0), model=bernoulli),
        ValueError,
        r"observed site 'y' has \d+ value\(s\) outside the support of its BernoulliLogits distribution "
        r"\(Boolean\(\)\): 2 .*recode labels",
    ),
    Case(
        "data-outside-support-counts",
        lambda c: c.exact(c.X, jnp.where(c.y > 0, -1.0, 0.5), model=poisson),
        ValueError,
        r"observed site 'y' has 30 value\(s\) outside the support of its Poisson distribution .*: -1, 0.5",
    ),
    Case(
        "data-list",
        lambda c: c.exact(c.X, np.asarray(c.y).tolist()),
        None,
        check=lambda s: s["beta"].shape == (1, 4, P),
    ),
    Case(
        "data-pandas",
        lambda c: c.exact(pd.DataFrame(np.asarray(c.X)), pd.Series(np.asarray(c.y))),
        None,
        check=lambda s: s["beta"].shape == (1, 4, P),
    ),
    Case(
        "data-not-numeric",
        lambda c: c.exact(pd.DataFrame({"a": ["x"] * N}), c.y),
        TypeError,
        r"args\[0\] is a DataFrame of dtype object, not numbers",
    ),
    Case(
        "data-all-masked",
        lambda c: c.exact(c.X, c.y, np.zeros(N, bool), model=masked_ridge),
        ValueError,
        r"every observation is masked",
    ),
    # ---- model
    Case("model-no-plate", lambda c: c.exact(model=no_plate), ValueError, r"observed site 'y' is not inside a plate"),
    Case(
        "model-plate-size",
        lambda c: c.exact(model=plate_of_5),
        ValueError,
        r"no axis of length 5 at dim -1 for plate 'data'",
    ),
    Case(
        "model-discrete-latent",
        lambda c: c.exact(model=discrete_latent),
        ValueError,
        r"latent site 'k' is discrete \(Bernoulli",
    ),
    Case(
        "model-round",
        lambda c: c.run(model=rounded),
        ValueError,
        r"log likelihood changes with latent site 'beta' but its gradient .* is exactly zero",
    ),
    Case(
        "model-nan-gradient",
        lambda c: c.run(model=nan_branch),
        ValueError,
        r"gradient of the model's log density is NaN/inf at the starting point .* latent site 'beta'",
    ),
    Case(
        "model-round-exact",
        lambda c: c.exact(model=rounded),
        ValueError,
        r"log likelihood changes with latent site 'beta' but its gradient .* is exactly zero",
    ),
    Case(
        "model-nan-gradient-exact",
        lambda c: c.exact(model=nan_branch),
        ValueError,
        r"gradient of the model's log density is NaN/inf at the starting point .* latent site 'beta'",
    ),
    Case("model-no-latent", lambda c: c.exact(model=no_latent), ValueError, r"no latent sample site"),
    Case("model-subsample", lambda c: c.exact(model=subsampled), ValueError, r"plate 'data' subsamples \(10 of 30\)"),
    Case(
        "model-several-plates",
        lambda c: c.exact(model=nested_plates),
        ValueError,
        r"inside several plates \['data', 'cols'\]; say which one .* `obs_plate=`",
    ),
    Case(
        "model-obs-plate-unknown",
        lambda c: c.exact(obs_plate="rows"),
        ValueError,
        r"not inside the plate `obs_plate='rows'`",
    ),
    Case(
        "model-plate-sizes-differ",
        lambda c: c.exact(model=two_sizes),
        ValueError,
        r"plates of different sizes \{'y': 30, 'z': 5\}",
    ),
    Case("model-not-callable", lambda c: c.exact(model="ridge"), TypeError, r"`model` must be a NumPyro model"),
    Case(
        "model-data-shapes",
        lambda c: c.exact(c.X, c.g, c.y, model=group_sizes),
        ValueError,
        r"needs the values of a data argument to build its shapes .* Pass `static_args=\('g',\)`",
    ),
    Case(
        "model-static-args-observed",
        lambda c: c.exact(c.X, c.g, c.y, model=group_sizes, static_args=("g", "y")),
        ValueError,
        r"`static_args` names 'y', the observed data of site 'y': observed values stay traced",
    ),
    Case(
        "model-static-args-unknown",
        lambda c: c.exact(c.X, c.g, c.y, model=group_sizes, static_args=("groups",)),
        ValueError,
        r"`static_args` names 'groups', which is not an argument passed to the model",
    ),
    Case(
        "model-hyper-in-python",
        lambda c: c.exact(model=lam_branch),
        ValueError,
        r"uses the value of a hyperparameter \(lam\) in Python",
    ),
    Case(
        "model-factor-outside-plate",
        lambda c: c.exact(model=factor_outside_plate),
        ValueError,
        r"factor 'll' has shape \(30,\) outside any plate: wbbgen cannot tell a per-observation term",
    ),
    Case(
        "model-masked-values-used",
        lambda c: c.exact(c.X, c.y, c.half, model=masked_values_used),
        ValueError,
        r"the model uses the masked entries of \['y'\] \(obs_mask=\) elsewhere",
    ),
    Case(
        "function-model-keywords",
        lambda c: c.exact(c.X, model=FM, y=c.y),
        TypeError,
        r"FunctionModel takes data as positional arguments only; got keywords \['y'\]",
    ),
    # ---- priors
    Case("prior-unknown", lambda c: c.exact(prior_weight="flat"), ValueError, r"`prior_weight='flat'` is unknown"),
    Case(
        "prior-anchored-no-sampler",
        lambda c: c.exact(model=FM),
        ValueError,
        r'`prior_weight="anchored"` needs FunctionModel\(\.\.\., sample_prior=\.\.\.\)',
    ),
    Case("prior-scale-anchored", lambda c: c.scale_draws, None, check=_check_scale_priors),
    Case("prior-flat-no-anchor", _check_flat_anchor, None, check=_check_scale_priors),
    # ---- hyperparameters
    Case(
        "hyper-not-keyword",
        lambda c: c.exact(hyper={"alpha": [1.0]}),
        ValueError,
        r"hyperparameter 'alpha' is not a keyword argument of the model",
    ),
    Case(
        "hyper-given-twice",
        lambda c: c.exact(lam=2.0),
        ValueError,
        r"\['lam'\] are given both as model keywords and in `hyper`",
    ),
    Case(
        "hyper-grid-for-training",
        lambda c: c.infer(hyper={"lam": [0.1, 1.0]}),
        TypeError,
        r"must be a numpyro distribution .* Grids go to get_samples",
    ),
    Case("hyper-empty", lambda c: c.infer(hyper={}), ValueError, r"non-empty dict"),
    Case(
        "hyper-discrete",
        lambda c: c.infer(hyper={"lam": dist.Poisson(3.0)}),
        ValueError,
        r"must be a scalar continuous distribution",
    ),
    Case(
        "hyper-batched",
        lambda c: c.infer(hyper={"lam": dist.LogUniform(jnp.ones(2), 10.0)}),
        ValueError,
        r"must be a scalar continuous distribution.*batch_shape=\(2,\)",
    ),
    Case(
        "hyper-support",
        lambda c: c.infer(hyper={"lam": dist.ImproperUniform(constraints.greater_than(1.0), (), ())}),
        ValueError,
        r"wbbgen supports real, positive and interval supports",
    ),
    Case(
        "hyper-nonfinite-density",
        lambda c: c.run(options={"hyper": {"lam": dist.Normal(0.0, 1.0)}}),
        ValueError,
        r"log density is not finite at hyperparameter values \{lam=-",
    ),
    # ---- grids
    Case(
        "grid-zero-log-scale",
        lambda c: c.samples({"lam": [0.0, 1.0]}),
        ValueError,
        r"must be > 0 \(it is a positive, log-scale hyperparameter\)",
    ),
    Case(
        "grid-negative-exact",
        lambda c: c.exact(hyper={"lam": [1.0, -1.0]}),
        ValueError,
        r"not finite at hyperparameter values \{lam=-1\}",
    ),
    Case(
        "gradient-search-schedule",
        lambda c: wbbgen.gradient_search(
            c.trained.infer,
            jax.random.key(0),
            c.trained.result,
            c.trained.X,
            c.trained.y,
            learning_rate=lambda step: 0.05,
        ),
        ValueError,
        r"`learning_rate` must be a positive number .* schedules are not supported here",
    ),
    Case(
        "gradient-search-lr-negative",
        lambda c: wbbgen.gradient_search(
            c.trained.infer, jax.random.key(0), c.trained.result, c.trained.X, c.trained.y, learning_rate=-0.05
        ),
        ValueError,
        r"`learning_rate` must be a positive, finite number \(e.g. 0.05\), got -0.05",
    ),
    Case(
        "kfold-folds-zero",
        lambda c: wbbgen.kfold_cv(
            c.trained.infer, jax.random.key(0), c.trained.result, hyper={"lam": [1.0]}, num_folds=0
        ),
        ValueError,
        r"`num_folds` must be a positive integer, got 0",
    ),
    Case("grid-nan", lambda c: c.samples({"lam": [1.0, np.nan]}), ValueError, r"contains NaN or inf"),
    Case(
        "grid-outside-support",
        lambda c: c.samples({"lam": [1.0, 1e4]}),
        ExtrapolationWarning,
        r"10000 \(2 decades outside\) lie outside the training support \[0\.01, 100\]",
    ),
    Case("grid-wrong-name", lambda c: c.samples({"mu": [1.0]}), ValueError, r"must give a grid for each of \['lam'\]"),
    Case("grid-2d", lambda c: c.exact(hyper={"lam": [[1.0, 2.0]]}), ValueError, r"must be a non-empty 1-d grid"),
    Case("grid-not-dict", lambda c: c.exact(hyper=[1.0]), ValueError, r"`hyper` must be a dict of grids"),
    # ---- weights
    Case(
        "weights-masked-rows",
        lambda c: c.exact(c.X, c.y, c.half, model=masked_ridge, weights=W.exponential(N)),
        ValueError,
        r"`weights` was built for 30 observations, but 15 rows have every observation masked",
    ),
    Case("weights-unknown", lambda c: c.exact(weights="bayes"), ValueError, r"`weights='bayes'` is unknown"),
    Case("weights-other-n", lambda c: c.exact(weights=W.exponential(5)), ValueError, r"built for 5 observations"),
    Case(
        "weights-sample-shape",
        lambda c: c.exact(weights=scheme(N, sample=lambda k, b=(): jnp.ones((*b, N - 1)))),
        ValueError,
        r"sample\(key, \(8,\)\) returned shape \(8, 29\), expected \(8, 30\)",
    ),
    Case(
        "weights-expand-shape",
        lambda c: c.exact(weights=scheme(N, expand=lambda v: v[..., :-1])),
        ValueError,
        r"expand\(v\) returned shape \(8, 29\), expected \(8, 30\)",
    ),
    Case(
        "weights-negative",
        lambda c: c.exact(weights=scheme(N, sample=lambda k, b=(): jax.random.normal(k, (*b, N)))),
        ValueError,
        r"drew negative weights",
    ),
    Case(
        "weights-all-zero",
        lambda c: c.exact(weights=lambda n: scheme(n, sample=lambda k, b=(): jnp.zeros((*b, n)))),
        ValueError,
        r"drew a vector of all-zero weights",
    ),
    Case(
        "weights-nan",
        lambda c: c.exact(weights=scheme(N, sample=lambda k, b=(): jnp.full((*b, N), jnp.nan))),
        ValueError,
        r"drew NaN or inf weights",
    ),
    Case(
        "weights-not-a-scheme",
        lambda c: c.exact(weights=lambda n: 5),
        TypeError,
        r"`weights` must be a name, a WeightScheme or a function n -> WeightScheme, got int",
    ),
    Case(
        "weights-too-many-blocks",
        lambda c: W.block(10, 20, rng_key=jax.random.key(0)),
        ValueError,
        r"`num_blocks`=20 exceeds the number of observations 10",
    ),
    Case("weights-block-no-key", lambda c: W.block(10, 2), ValueError, r"needs `rng_key=`"),
    # ---- counts and options
    Case("num-steps-zero", lambda c: c.run(num_steps=0), ValueError, r"`num_steps` must be a positive integer, got 0"),
    Case("num-steps-float", lambda c: c.run(num_steps=10.5), ValueError, r"`num_steps` must be a positive integer"),
    Case(
        "num-samples-negative",
        lambda c: c.samples({"lam": [1.0]}, num_samples=-1),
        ValueError,
        r"`num_samples` must be a positive integer, got -1",
    ),
    Case(
        "num-samples-float", lambda c: c.exact(num_samples=2.5), ValueError, r"`num_samples` must be a positive integer"
    ),
    Case("batch-size-zero", lambda c: c.infer(batch_size=0), ValueError, r"`batch_size` must be a positive integer"),
    Case(
        "batch-size-float", lambda c: c.infer(batch_size=12.5), ValueError, r"`batch_size` must be a positive integer"
    ),
    Case(
        "optimizer-not-optax",
        lambda c: c.infer(optimizer="adam"),
        TypeError,
        r"`optimizer` must be an optax GradientTransformation",
    ),
    Case(
        "optimizer-uncalled",
        lambda c: c.infer(optimizer=optax.adam),
        TypeError,
        r"`optimizer` must be an optax GradientTransformation",
    ),
    Case(
        "generator-unknown",
        lambda c: c.run(options={"generator": "cnn"}),
        ValueError,
        r"`generator='cnn'` is unknown; choose one of \['linear', 'mlp'\]",
    ),
    Case("mode-unknown", lambda c: c.infer(mode="regression"), ValueError, r"`mode='regression'` is unknown"),
    Case("on-nonfinite-unknown", lambda c: c.infer(on_nonfinite="ignore"), ValueError, r"`on_nonfinite='ignore'`"),
    Case(
        "fidelity-negative",
        lambda c: c.infer(fidelity_samples=-1),
        ValueError,
        r"`fidelity_samples` must be an integer",
    ),
    Case("rng-key-int", lambda c: c.exact_key(0), TypeError, r"`rng_key` must be a single PRNG key"),
    Case("tol-zero", lambda c: c.exact(tol=0.0), ValueError, r"`tol` must be > 0"),
    Case("method-unknown", lambda c: c.exact(method="sgd"), ValueError, r"`method='sgd'` is unknown"),
    Case("max-steps-zero", lambda c: c.exact(max_steps=0), ValueError, r"`max_steps` must be a positive integer"),
    Case(
        "pilot-max-steps-zero",
        lambda c: c.infer(pilot_max_steps=0),
        ValueError,
        r"`pilot_max_steps` must be a positive integer, got 0",
    ),
    Case(
        "data-batch-size-supervised",
        lambda c: c.infer(data_batch_size=8, mode="supervised"),
        ValueError,
        r"`data_batch_size` applies to mode='criterion' only",
    ),
    Case("cv-folds-one", lambda c: c.infer(cv_folds=1), ValueError, r"`cv_folds` must be an integer ≥ 2"),
    Case(
        "cv-folds-supervised",
        lambda c: c.infer(cv_folds=5, mode="supervised"),
        ValueError,
        r"`cv_folds` applies to mode='criterion' only",
    ),
    Case(
        "cv-folds-too-many",
        lambda c: c.run(options={"cv_folds": N + 1}),
        ValueError,
        rf"`cv_folds={N + 1}` exceeds the {N} weights of a draw",
    ),
    Case(
        "init-generator-not-a-result",
        lambda c: c.run(init_generator={"generator": None}),
        TypeError,
        r"`init_generator` must be the WBBRunResult of an earlier run\(\), got dict",
    ),
    Case(
        "init-generator-other-range",
        lambda c: c.run(init_generator=c.trained.result),
        ValueError,
        r"`init_generator` was trained for model 'ridge' over \[\('lam', 0\.01, 100\.0.*this run is for 'ridge' over "
        r"\[\('lam', 0\.1, 10\.0",
    ),
    # ---- results
    Case(
        "result-other-model",
        lambda c: c.samples({"lam": [1.0]}, infer=c.infer(other_model)),
        ValueError,
        r"`result` was trained for model 'ridge' .* wraps '.*other_model'",
    ),
    Case(
        "result-not-a-result",
        lambda c: c.samples({"lam": [1.0]}, result={"generator": None}),
        TypeError,
        r"`result` must be the WBBRunResult returned by run\(\), got dict",
    ),
    # ---- checkpoints
    Case(
        "checkpoint-truncated",
        lambda c: c.resume(c.checkpoint_dir(lambda raw, p: raw[: len(raw) // 2])),
        wio.FileFormatError,
        r"checkpoint .* is truncated: \d+ bytes, its header announces \d+",
    ),
    Case(
        "checkpoint-corrupt",
        lambda c: c.resume(c.checkpoint_dir(_flip)),
        wio.FileFormatError,
        r"is corrupt: its SHA-256 checksum does not match",
    ),
    Case(
        "checkpoint-newer-wbbgen",
        lambda c: c.resume(c.checkpoint_dir(_rewrite({"wbbgen": "99.0"}))),
        wio.FileFormatError,
        r"written by wbbgen 99\.0, newer than this wbbgen",
    ),
    Case(
        "checkpoint-newer-format",
        lambda c: c.resume(c.checkpoint_dir(_rewrite(format_version=99))),
        wio.FileFormatError,
        r"has format version 99, written by a newer wbbgen",
    ),
    Case(
        "checkpoint-none",
        lambda c: c.resume(c.tmp / "empty"),
        FileNotFoundError,
        r"`resume=True` but `checkpoint_dir=.*` holds no checkpoint",
    ),
    Case(
        "checkpoint-exists",
        lambda c: c.run(checkpoint_dir=c.checkpoint_dir()),
        FileExistsError,
        r"already holds a checkpoint \(checkpoint-000000040\.wbb\); pass resume=True",
    ),
    Case(
        "checkpoint-other-data",
        lambda c: c.resume(c.checkpoint_dir(), y=c.trained.y + 1.0),
        wio.MismatchError,
        r"written for other data: args\[1\]: same shape \(40,\) and dtype, different values",
    ),
    Case(
        "checkpoint-other-steps",
        lambda c: c.resume(c.checkpoint_dir(), num_steps=80),
        wio.MismatchError,
        r"num_steps=40, this call asks for num_steps=80",
    ),
    Case(
        "checkpoint-every-without-dir",
        lambda c: c.run(checkpoint_every=10),
        ValueError,
        r"`checkpoint_every` needs `checkpoint_dir=`",
    ),
    # ---- saved generators
    Case(
        "saved-other-model",
        lambda c: c.load(None, other_model),
        wio.MismatchError,
        r"trained on another model: model: saved 'ridge', now '.*other_model'",
    ),
    Case(
        "saved-other-data",
        lambda c: c.load(None, ridge, c.trained.X[:, ::-1], c.trained.y),
        wio.MismatchError,
        r"trained on other data: args\[0\]: same shape \(40, 3\) and dtype, different values",
    ),
    Case(
        "saved-truncated", lambda c: c.load(c.truncated_copy()), wio.FileFormatError, r"saved generator .* is truncated"
    ),
    Case(
        "saved-is-checkpoint",
        lambda c: c.load(ckpt.latest_checkpoint(c.trained.checkpoint_dir)),
        wio.FileFormatError,
        r"is a checkpoint file, not a saved generator",
    ),
]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return Ctx(tmp_path_factory.mktemp("bad-inputs"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(ctx, case):
    if case.expect is None:
        out = case.call(ctx)
        if case.check is not None:
            case.check(out)
    elif issubclass(case.expect, Warning):
        with pytest.warns(case.expect, match=case.match):
            case.call(ctx)
    else:
        with pytest.raises(case.expect, match=case.match) as err:
            case.call(ctx)
        assert type(err.value) is case.expect  # not a subclass standing in for it


_ROW = re.compile(r"^\|\s*`(?P<id>[a-z0-9-]+)`\s*\|(?P<input>[^|]+)\|(?P<says>.+)\|(?P<test>[^|]+)\|\s*$")


def _doc_rows():
    with open(DOC, encoding="utf-8") as f:
        return [m.groupdict() for m in map(_ROW.match, f.read().splitlines()) if m]


def test_table_matches_the_cases():
    """Every row of docs/bad-inputs.md is tested (a case here, or a named test elsewhere that
    exists), every case has a row, and the row names the class the case expects."""
    rows = _doc_rows()
    assert len(rows) >= 30
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids in the table"
    cases = {c.id: c for c in CASES}
    elsewhere = {r["id"]: r["test"].strip() for r in rows if r["id"] not in cases}
    for rid, test in elsewhere.items():
        m = re.fullmatch(r"`(tests/(?:\w+/)?test_\w+\.py)::(test_\w+)`", test)
        assert m, f"row {rid!r} has no case in test_bad_inputs.py and names no test: {test!r}"
        path = os.path.join(os.path.dirname(__file__), os.pardir, m.group(1))
        with open(path, encoding="utf-8") as f:
            assert re.search(rf"^def {m.group(2)}\(", f.read(), re.M), f"row {rid!r}: {test} does not exist"
    assert set(cases) <= set(ids), f"cases without a row: {sorted(set(cases) - set(ids))}"
    for r in rows:
        case = cases.get(r["id"])
        if case is None:
            continue
        assert r["test"].strip() == "this file", r
        says = r["says"].strip()
        named = re.match(r"`?(\w+)`?", says).group(1)
        assert named == (case.expect.__name__ if case.expect else "works"), (r["id"], named)
