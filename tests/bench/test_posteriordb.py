"""wbbgen.bench.posteriordb: the vendored posteriordb references and their NumPyro ports.

Fast: every file loads, every reference parameter maps to a site of the model's size, and the
model builds a wbbgen objective. Slow (``-m slow``): NumPyro NUTS on each port agrees with the
reference draws within Monte Carlo error: |mean − ref mean| / ref sd < 4/√ESS + 4/√N_ref, with
ESS NumPyro's effective sample size of that coordinate and N_ref = 10,000 reference draws.
"""

import jax
import numpy as np
import pytest

from wbbgen.bench.posteriordb import MODELS, NAMES, load
from wbbgen.model import build_objective


@pytest.mark.parametrize("name", NAMES)
def test_reference_maps_to_the_model(name):
    model, data_fn, sites = MODELS[name]
    ref = load(name)
    args, kwargs = data_fn(ref["data"])
    obj = build_objective(model, args, kwargs, ("lam",))
    sizes = {**{k: int(np.prod(s, dtype=int)) for k, s in obj.latent_shapes.items()},
             **{k: int(np.prod(s, dtype=int)) for k, s in obj.deterministic_shapes.items()}}  # fmt: skip
    if obj.joint is not None:
        sizes |= {k: int(np.prod(s, dtype=int)) for k, s in obj.joint.deterministic_shapes.items()}
    for param, (site, _) in sites.items():
        assert len(ref["reference"][param]["mean"]) == sizes[site], (param, site)
    assert ref["num_draws"] == 10_000


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_nuts_on_the_port_matches_the_reference(name):
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC, NUTS

    model, data_fn, sites = MODELS[name]
    ref = load(name)
    args, kwargs = data_fn(ref["data"])
    mcmc = MCMC(NUTS(model, target_accept_prob=0.99), num_warmup=1000, num_samples=2000, num_chains=2,
                chain_method="sequential", progress_bar=False)  # fmt: skip
    mcmc.run(jax.random.key(0), *args, **kwargs, lam=1.0)
    grouped = mcmc.get_samples(group_by_chain=True)
    for param, (site, _) in sites.items():
        x = np.asarray(grouped[site]).reshape(2, 2000, -1)
        ess = effective_sample_size(x)
        mean, sd = (np.asarray(ref["reference"][param][k]) for k in ("mean", "sd"))
        shift = np.abs(x.reshape(-1, x.shape[-1]).mean(0) - mean) / sd
        assert np.all(shift < 4 / np.sqrt(ess) + 4 / np.sqrt(10_000)), (param, shift, ess)
