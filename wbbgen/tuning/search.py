r"""Continuous search over the hyperparameters by gradient ascent through the generator.

With the draws fixed (weights wₛ and prior keys, those of :func:`wbbgen.problem.draws` for
the key), the held-out criterion

.. math:: C(λ) = \frac{1}{S} \sum_{s=1}^{S} \frac{1}{ñ} \sum_{i=1}^{ñ}
          \log p(ỹ_i \mid g(w_s, z_λ, ξ_{s,λ}), λ)

is a deterministic, smooth function of λ: the global scheme of Lorraine & Duvenaud (2018),
where the generator g is trained over p(λ) first and λ then follows ∇_λ C. The search runs
on the encoded scale z ∈ [−1, 1] (log λ for positive hyperparameters) with Adam.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wbbgen._checks import as_key, positive_int
from wbbgen._data import same_static, static_part
from wbbgen.hyper import decode
from wbbgen.model import build_objective
from wbbgen.problem import generate, hyper_dict

__all__ = ["GradientSearchResult", "gradient_search", "FORWARD_MODE_MAX"]

#: With ``autodiff="auto"``, :func:`gradient_search` differentiates by forward mode (one
#: Jacobian-vector product per hyperparameter) up to this many hyperparameters, by reverse
#: mode above: for few hyperparameters the forward-mode program is the smaller one to compile.
FORWARD_MODE_MAX = 2

_AUTODIFF = ("auto", "forward", "reverse")


class GradientSearchResult(NamedTuple):
    """What :func:`gradient_search` returns.

    Attributes:
        best: ``{name: value}``, the end point of the start with the best final criterion.
        value: its criterion C(λ), the mean held-out log density per observation.
        trace: ``{name: (num_starts, num_steps + 1)}``, the path of every start.
        values: ``(num_starts, num_steps + 1)``, the criterion along every path.
        num_clipped: steps that would have left the training support and were clipped to it.
    """

    best: dict
    value: float
    trace: dict
    values: np.ndarray
    num_clipped: int


def gradient_search(
    infer,
    rng_key,
    result,
    *args,
    num_starts: int = 4,
    num_steps: int = 200,
    learning_rate: float = 0.05,
    num_samples: int = 64,
    autodiff: str = "auto",
    **kwargs,
) -> GradientSearchResult:
    r"""Maximise the held-out log density C(λ) of new data ``model(*args, **kwargs)`` by gradient ascent.

    C(λ) is the mean over ``num_samples`` fixed draws and over the ñ new observations of
    log p(ỹᵢ | θₛ(λ), λ), θₛ(λ) the generator's draw s at λ (see :mod:`wbbgen.tuning.search`).
    From ``num_starts`` points evenly spaced on the encoded scale in [−0.8, 0.8] (every
    hyperparameter at the same point), Adam takes ``num_steps`` steps of ∇_z C on the
    encoded scale z ∈ [−1, 1]; steps that would leave the training support are clipped to
    it, counted, and warned about.

    Args:
        infer: the trained object (an :class:`~wbbgen.AmortizedWBB`); used through
            ``infer.check_result(result)``, ``infer.model`` and ``infer.obs_plate``.
        rng_key: the key of the draws; with the same key and ``num_samples``,
            :func:`~wbbgen.tuning.tune` computes the same criterion at the same λ.
        result: the result of ``infer.run``.
        *args, **kwargs: the new (validation) data, observed values included, as the model takes them.
        num_starts: starting points.
        num_steps: Adam steps per start.
        learning_rate: Adam's step size on the encoded scale (the support is [−1, 1]).
        num_samples: draws S (weights and prior keys) averaged in the criterion.
        autodiff: ``"forward"`` (one Jacobian-vector product per hyperparameter),
            ``"reverse"``, or ``"auto"``: forward up to :data:`FORWARD_MODE_MAX` hyperparameters.

    Returns:
        A :class:`GradientSearchResult`.

    The search compiles once per trained result, ``num_steps``, ``num_samples``, ``autodiff``
    and shapes; later calls reuse the program (JAX's cache keeps it, and the result's
    objective, for the life of the process). Validation data whose non-array arguments
    differ from the training call's compile their own program on each call.

    Example:
        >>> found = gradient_search(infer, jax.random.key(4), result, X_val, y_val)  # doctest: +SKIP
        >>> found.best, found.values.shape  # doctest: +SKIP
        ({'lam': 2.7...}, (4, 201))
    """
    rng_key = as_key(rng_key)
    num_starts = positive_int(num_starts, "num_starts")
    num_steps = positive_int(num_steps, "num_steps")
    num_samples = positive_int(num_samples, "num_samples")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"`learning_rate` must be a positive number (Adam's step size on the encoded scale, where the "
            f"support is [-1, 1]; e.g. 0.05), got {learning_rate!r}; schedules are not supported here."
        )
    if not 0 < float(learning_rate) < np.inf:
        raise ValueError(f"`learning_rate` must be a positive, finite number (e.g. 0.05), got {learning_rate}.")
    if autodiff not in _AUTODIFF:
        raise ValueError(f"`autodiff={autodiff!r}` is unknown; choose one of {list(_AUTODIFF)}.")
    infer.check_result(result)
    problem, domains, generator = result.problem, result.domains, result.generator
    names = [d.name for d in domains]
    if any(d.choices is not None for d in domains):
        raise ValueError(
            "gradient_search follows gradients of continuous hyperparameters; for discrete (Choice) "
            "ones use tune() over a grid of their values."
        )
    val = build_objective(infer.model, args, kwargs, names, infer.obs_plate, static_args=infer.static_args)
    _check_validation(val, problem.objective)
    # The training objective's likelihood evaluates new data of the same layout (its data are
    # an argument) and, unlike `val`'s, is the same function at every call: the compiled
    # search is then reused. Other non-array arguments than training's need `val`'s own.
    unchanged = same_static(static_part(result.model_args, result.model_kwargs), static_part(args, kwargs))
    loglik = problem.objective.log_likelihood if unchanged else val.log_likelihood
    dtype = problem.objective.init_params.dtype
    starts = jnp.linspace(-0.8, 0.8, num_starts, dtype=dtype)[:, None] * jnp.ones((1, len(domains)), dtype)
    static_domains = tuple(d._replace(distribution=None) for d in domains)  # hashable by value
    forward = len(domains) <= FORWARD_MODE_MAX if autodiff == "auto" else autodiff == "forward"
    paths, vals, clipped = _search(
        problem,
        static_domains,
        loglik,
        num_steps,
        num_samples,
        forward,
        starts,
        generator,
        rng_key,
        val.data,
        jnp.asarray(learning_rate, dtype),
    )
    paths, vals = np.asarray(paths), np.asarray(vals)
    n_clipped = int(np.asarray(clipped).sum())
    if n_clipped:
        warnings.warn(
            f"gradient_search: {n_clipped} steps would have left the training support "
            f"{[(d.low, d.high) for d in domains]} and were clipped to it; the optimum may lie outside "
            "-- retrain over a wider `hyper` range.",
            UserWarning,
            stacklevel=2,
        )
    best = int(np.argmax(vals[:, -1]))
    trace = {d.name: decode(d, paths[..., i]) for i, d in enumerate(domains)}
    return GradientSearchResult(
        {n: float(trace[n][best, -1]) for n in names}, float(vals[best, -1]), trace, vals, n_clipped
    )


def _check_validation(val, train) -> None:
    """Refuse validation data that make the model a different one: latent sites the
    training data observe (the observed values left out), or other parameter counts."""
    extra = sorted(set(val.latent_shapes) - set(train.latent_shapes))
    if extra:
        shown = ", ".join(repr(n) for n in extra)
        raise ValueError(
            f"with the validation data the model samples {shown} as latent: the observed validation data "
            "were not passed. Pass them as the model takes its observations, e.g. "
            "gradient_search(infer, key, result, X_val, y_val) or (..., X_val, y=y_val)."
        )
    if val.num_params != train.num_params:
        raise ValueError(
            f"the validation data give the model {val.num_params} parameters, the training data "
            f"{train.num_params}; pass validation data with the same columns."
        )


@eqx.filter_jit
def _search(
    problem, domains, loglik, num_steps, num_samples, forward, starts, generator, rng_key, val_data, learning_rate
):
    """Adam ascent of C from each start ``(num_starts, m)``: the paths and criterion values
    ``(num_starts, num_steps + 1)`` and the clipped-step counts ``(num_starts,)``.

    Compiled once per problem, likelihood, ``num_steps``, ``num_samples``, mode (``forward``)
    and shapes: the generator, the key, the data and the learning rate are traced. The scan
    runs ``num_steps + 1`` evaluations and drops the last update, so the program holds one
    copy of the criterion (with its gradient), not a second one for the end point."""
    opt = optax.adam(learning_rate)

    def criterion(z):
        values = jnp.stack([decode(d, z[i]) for i, d in enumerate(domains)])
        thetas = generate(problem, domains, generator, rng_key, values[None], num_samples)[0]  # (S, d)
        h = hyper_dict(problem, values)
        ll = jax.vmap(lambda th: sum(x for x in loglik(th, h, val_data).values()))(thetas)  # (S, ñ)
        return jnp.mean(ll)

    def value_and_grad(z):
        if not forward:
            return jax.value_and_grad(criterion)(z)
        basis = jnp.eye(z.shape[0], dtype=z.dtype)
        return jax.vmap(lambda t: jax.jvp(criterion, (z,), (t,)), out_axes=(None, 0))(basis)

    def run(z0):
        def step(carry, k):
            z, state, clipped = carry
            value, grad = value_and_grad(z)
            updates, state = opt.update(-grad, state, z)
            z_new = z + updates
            out = (k < num_steps) & jnp.any(jnp.abs(z_new) > 1.0)
            return (jnp.clip(z_new, -1.0, 1.0), state, clipped + out), (z, value)

        carry = (z0, opt.init(z0), 0)
        (_, _, clipped), (path, vals) = jax.lax.scan(step, carry, jnp.arange(num_steps + 1))
        return path, vals, clipped

    return jax.vmap(run)(starts)
