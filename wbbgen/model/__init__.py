r"""The weighted objective, built from a NumPyro model or from a plain log-likelihood.

For unconstrained parameters θ (a flat vector), observation weights w and hyperparameters λ,

.. math::

    L(θ; w, λ) = \sum_i w_i\,(-\ell_i(θ, λ)) - \log π_λ(θ),
    \qquad \ell_i(θ, λ) = \log p(y_i \mid T(θ), λ),

where T maps θ to the constrained space (NumPyro's ``biject_to`` of each site's support) and
the prior term depends on the prior scheme (:mod:`wbbgen.prior`). Two prior densities are
exposed:

* ``log_prior`` -- the prior density of the *constrained* value T(θ), **without** the
  Jacobian (a WBB optimiser is a weighted MAP in the model's own parametrisation; NumPyro's
  ``potential_energy`` adds log|J|, which is right for MCMC and wrong here), plus the
  prior-side ``numpyro.factor`` terms;
* ``log_prior_anchored`` -- the randomised prior on the *unconstrained* space (density
  q_λ of θ there, Jacobian included), shifted by a random offset: :math:`\log q_λ(θ - a)`
  (:mod:`wbbgen.model.priors`); prior-side factors enter unshifted.

This package is the only part of wbbgen that knows NumPyro's conventions (sign, spaces,
plates, masks). Everything else sees an :class:`Objective`: pure functions of
``(theta, hyper, data)`` where ``hyper`` is a dict of traced scalars and ``data`` the model's
array arguments (traced, so one compilation serves every λ and every data set of the same
shape).

Modules: :mod:`~wbbgen.model.base` (the types), :mod:`~wbbgen.model.sites` (reading a trace),
:mod:`~wbbgen.model.priors` (unconstrained densities and anchors), :mod:`~wbbgen.model.inputs`
(data conversion and the first trace),
:mod:`~wbbgen.model.numpyro_model` and :mod:`~wbbgen.model.functions` (the two builders),
:mod:`~wbbgen.model.objective` (:func:`build_objective`).

Example:
    >>> from wbbgen.model import build_objective
    >>> import jax, jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> def ridge(X, y=None, *, lam=1.0):
    ...     b = numpyro.sample("b", dist.Normal(0, 1 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    ...     with numpyro.plate("data", X.shape[0]):
    ...         numpyro.sample("y", dist.Normal(X @ b, 1.0), obs=y)
    >>> obj = build_objective(ridge, (np.ones((5, 2)), np.zeros(5)), {}, ("lam",))
    >>> obj.num_params, obj.num_obs, obj.obs_sites
    (2, 5, ('y',))
    >>> obj.log_likelihood(jnp.zeros(2), {"lam": 1.0}, obj.data)["y"].shape
    (5,)
"""

from wbbgen.model.base import FunctionModel, Objective
from wbbgen.model.objective import build_objective
from wbbgen.model.priors import unconstrained_mode

__all__ = ["Objective", "FunctionModel", "build_objective", "unconstrained_mode"]
