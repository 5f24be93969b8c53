"""One data set of the calibration study: its reference, exact WBB and a generator per scheme,
and the numbers reported from their :func:`wbbgen.calibration` Datasets."""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from wbbgen import AmortizedWBB, calibration, exact_wbb, nuts_reference
from wbbgen.bench.calibration.data import SCHEMES, TARGET_COV90, TARGET_SD, Sizes, make_data, ridge_reference
from wbbgen.bench.calibration.theory import predicted
from wbbgen.bench.harness import timed

__all__ = ["summary_rows", "paired_fidelity", "Recorder", "run_problem"]

# ----------------------------------------------------------------------------- metrics


def _f(x):
    x = float(x)
    return x if math.isfinite(x) else None


def summary_rows(cal, k_lam: int) -> dict:
    """The study's per-λ numbers from a :func:`wbbgen.calibration` Dataset."""
    c = cal.isel(lam=k_lam)
    sd, cov, shift = (np.asarray(c[v]) for v in ("sd_ratio", "coverage_90", "mean_shift"))
    sd_se, cov_se, shift_se = (np.asarray(c[v + "_mcse"]) for v in ("sd_ratio", "coverage_90", "mean_shift"))
    j = int(np.nanargmax(np.abs(shift)))
    med_sd, med_cov = float(np.nanmedian(sd)), float(np.nanmedian(cov))
    return {
        "sd_ratio": _f(med_sd),
        "sd_ratio_mcse": _f(np.nanmedian(sd_se)),
        "sd_ratio_min": _f(np.nanmin(sd)),
        "sd_ratio_max": _f(np.nanmax(sd)),
        "coverage_90": _f(med_cov),
        "coverage_90_mcse": _f(np.nanmedian(cov_se)),
        "max_abs_mean_shift": _f(abs(shift[j])),
        "max_abs_mean_shift_mcse": _f(shift_se[j]),
        "max_abs_mean_shift_param": str(c.param.values[j]),
        "meets_target": bool(TARGET_SD[0] <= med_sd <= TARGET_SD[1] and TARGET_COV90[0] <= med_cov <= TARGET_COV90[1]),
        "per_param": {
            str(name): {"sd_ratio": _f(a), "coverage_90": _f(b), "mean_shift": _f(s)}
            for name, a, b, s in zip(c.param.values, sd, cov, shift, strict=True)
        },
    }


def paired_fidelity(gen, exact) -> list[dict]:
    """Generator vs exact WBB on identical draws, per λ: median and range over coordinates
    of the sd ratio, and the largest |mean difference| in exact sd."""
    g = np.concatenate([np.asarray(gen[k], np.float64).reshape(*gen[k].shape[:2], -1) for k in gen], -1)
    e = np.concatenate([np.asarray(exact[k], np.float64).reshape(*exact[k].shape[:2], -1) for k in exact], -1)
    sd = e.std(1)
    ratio = g.std(1) / sd
    shift = np.abs(g.mean(1) - e.mean(1)) / sd
    return [
        {
            "sd_ratio": _f(np.median(r)),
            "sd_ratio_min": _f(r.min()),
            "sd_ratio_max": _f(r.max()),
            "max_abs_mean_shift": _f(s.max()),
        }
        for r, s in zip(ratio, shift, strict=True)
    ]


# ----------------------------------------------------------------------------- the study


class Recorder:
    """Collects warnings instead of raising them (the study records them in the JSON)."""

    def __init__(self):
        self.messages: list[str] = []

    def __call__(self, label, fn, *args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn(*args, **kwargs)
        for w in caught:
            if issubclass(w.category, (DeprecationWarning, FutureWarning)):
                continue
            msg = f"{label}: {w.category.__name__}: {str(w.message).splitlines()[0][:300]}"
            if msg not in self.messages:
                self.messages.append(msg)
        return out


def run_problem(name: str, sizes: Sizes, schemes=SCHEMES, *, dtype=np.float32, seed=0, record=None, log=print):
    """Reference, exact WBB and a generator per scheme on one data set.

    Returns ``(entry, cals)``: the JSON entry and ``{(scheme, path): calibration Dataset}``.
    """
    record = record or Recorder()
    model, args, info = make_data(name, sizes, dtype)
    grid = np.asarray(sizes.grid, dtype)
    jargs = tuple(jnp.asarray(a) for a in args)
    k_ref, k_draw, k_train, k_check = jax.random.split(jax.random.key(seed), 4)
    timings = {}

    log(f"[{name}] reference ...")
    if name == "ridge":
        ref, timings["reference_s"] = timed(
            ridge_reference, *args, grid, num_chains=sizes.nuts_chains, num_samples=sizes.nuts_samples, seed=seed
        )
    else:
        ref, timings["reference_s"] = timed(
            record,
            f"{name}/nuts",
            nuts_reference,
            k_ref,
            model,
            *jargs,
            hyper={"lam": grid},
            num_chains=sizes.nuts_chains,
            num_warmup=sizes.nuts_warmup,
            num_samples=sizes.nuts_samples,
            progress_bar=False,
        )
    entry = {"info": info, "grid": grid.tolist(), "timings": timings, "schemes": {}}
    cals = {}
    for scheme in schemes:
        log(f"[{name}] {scheme}: exact WBB ...")
        exact, t_exact = timed(
            record,
            f"{name}/{scheme}/exact",
            exact_wbb,
            k_draw,
            model,
            *jargs,
            hyper={"lam": grid},
            num_samples=sizes.num_samples,
            prior_weight=scheme,
            progress_bar=False,
        )
        converged = np.asarray(exact.stats["converged"]).mean(-1)
        log(f"[{name}] {scheme}: training the generator ({sizes.num_steps} steps) ...")
        infer = AmortizedWBB(
            model,
            hyper={"lam": dist.LogUniform(1e-2, 1e3)},
            prior_weight=scheme,
            batch_size=sizes.batch_size,
            fidelity_samples=0,
        )
        result, t_train = timed(
            record, f"{name}/{scheme}/train", infer.run, k_train, *jargs, num_steps=sizes.num_steps, progress_bar=False
        )
        gen, t_gen_first = timed(
            record,
            f"{name}/{scheme}/gen",
            infer.get_samples,
            k_draw,
            result,
            hyper={"lam": grid},
            num_samples=sizes.num_samples,
        )
        _, t_gen = timed(
            record,
            f"{name}/{scheme}/gen",
            infer.get_samples,
            k_draw,
            result,
            hyper={"lam": grid},
            num_samples=sizes.num_samples,
        )
        per = {}
        for path, draws in (("exact", exact), ("generator", gen)):
            cal = record(
                f"{name}/{scheme}/{path}/calibration", calibration, draws.to_inference_data(log_likelihood=False), ref
            )
            cals[scheme, path] = cal
            per[path] = [{"lam": float(lam), **summary_rows(cal, k)} for k, lam in enumerate(grid)]
            check = record(f"{name}/{scheme}/{path}/posterior_check", draws.posterior_check, k_check, warn=False)
            for row, k_hat, ess, flag, moved in zip(
                per[path], check.k_hat, check.ess, check.flagged, check.moved, strict=True
            ):
                row["pareto_k"], row["posterior_check_ess"] = _f(k_hat), _f(ess)  # inf (collapsed): None
                row["posterior_check_flagged"] = bool(flag)  # k̂ > 0.7 or moved by reweighting; NaN k̂: False
                row["posterior_check_moved"] = bool(moved)
            per["posterior_check_reason"] = check.reason
        per["exact_converged"] = converged.tolist()
        per["first_order_sd_ratio"] = predicted(name, args, grid, scheme)
        per["generator_vs_exact"] = paired_fidelity(gen, exact)
        per["timings"] = {
            "exact_wbb_grid_s": t_exact,
            "generator_train_s": t_train,
            "generator_train_detail": {k: v for k, v in result.diagnostics.items() if k.endswith("_s")},
            "generator_eval_first_s": t_gen_first,
            "generator_eval_s": t_gen,
        }
        entry["schemes"][scheme] = per
        rows = per["exact"]
        log(
            f"[{name}] {scheme}: exact {t_exact:.1f} s, train {t_train:.1f} s; median sd ratio exact "
            + " ".join(f"{r['sd_ratio']:.2f}" for r in rows)
            + " | generator "
            + " ".join(f"{r['sd_ratio']:.2f}" for r in per["generator"])
        )
    return entry, cals
