r"""Scheme-choice study: calibration of WBB draws against the posterior, per prior scheme.

Usage::

    python benchmarks/calibration.py --out DIR            # full size (~12 min on 2 CPU cores)
    python benchmarks/calibration.py --out DIR --smoke    # tiny sizes (< 60 s), what the tests run
    python benchmarks/calibration.py --out DIR --markdown-only   # re-render the tables from the JSON

For each prior scheme (``random``, ``fixed``, ``anchored``; :mod:`wbbgen.prior`), each data
set and each λ of a log grid over [1e-2, 1e3], the WBB draws of two paths --

* **exact**: :func:`wbbgen.exact_wbb` (every draw solved by Newton),
* **generator**: :class:`wbbgen.AmortizedWBB` trained once over λ ~ LogUniform(1e-2, 1e3)
  with the same scheme, evaluated with the *same* key as the exact path (identical weights
  and anchors, so generator − exact is a paired comparison) --

are compared with a reference posterior by :func:`wbbgen.calibration`. Data sets:

* ``ridge``: conjugate ridge, n = 100, p = 10, x ~ N(0, I), β = 0.5·z (z ~ N(0, I) fixed by
  the seed; signal variance ‖β‖² = 3.6σ²), σ = 1 known, β ~ N(0, I/λ). Reference: i.i.d.
  draws of the exact Gaussian posterior N(A⁻¹Xᵀy/σ², A⁻¹), A = XᵀX/σ² + λI (4 × 1000 draws,
  wrapped by :func:`wbbgen.convert.build_inference_data` so ESS = N).
* ``breast_cancer``: :func:`wbbgen.datasets.breast_cancer` training split (n = 398, p = 30,
  linearly separable -- see ``separable`` in the JSON), :func:`wbbgen.demo.logistic_model`
  (β ~ N(0, I/λ), intercept b0 ~ N(0, 10²)). Reference: :func:`wbbgen.nuts_reference`.
* ``breast_cancer_flat``: the same with an unpenalised intercept
  b0 ~ ImproperUniform(ℝ) (no anchor: wbbgen gives flat sites a zero offset).
* ``synthetic_logistic``: n = 1000, p = 10, x ~ N(0, I), β = 0.5·(1, −1, .8, −.8, .6, −.6,
  .4, −.4, .2, −.2), b0 = −0.3 (‖β‖ = 1.05: logits of sd ≈ 1, far from separable -- an LP
  finds no separating hyperplane), model as ``breast_cancer``. Reference: NUTS.

Reported per (data set, scheme, λ, path): the median over coordinates of the sd ratio
(WBB sd / reference sd) and of the 90 % coverage (share of reference draws inside the WBB
central 90 % interval), and the largest |mean shift| (in reference sd), each with an MCSE
(the median coordinate's MCSE; for the maximum, the MCSE of the coordinate attaining it --
note that a maximum over P coordinates is biased upwards by about
√(2 log P)·MCSE even when every shift is zero). The issue's target, at every λ: median sd
ratio in [0.9, 1.1] and median 90 % coverage in [0.85, 0.95]. Wall times of each path (NUTS
over the grid, exact WBB over the grid, generator training and evaluation) are measured in
the same run, first calls included (they contain the compilation).

Outputs in ``--out``: ``calibration.json`` (everything, per coordinate too),
``calibration.md`` (tables), ``calibration_<data set>.png`` (one figure per data set:
rows = schemes, columns = sd ratio and coverage, exact and generator overlaid), and
``sbc_ranks.png`` / the ``sbc`` entry of the JSON (simulation-based calibration of anchored
exact WBB on a conjugate ridge, :mod:`benchmarks.sbc`).

Warnings of the library (unconverged exact draws, NUTS diagnostics) are recorded in the
JSON, not raised. Floating point: float32 (the users' default) unless ``--x64``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCHEMES = ("random", "fixed", "anchored")
PROBLEMS = ("ridge", "breast_cancer", "breast_cancer_flat", "synthetic_logistic")
#: ``--smoke`` runs every step of the study once (exact Gaussian and NUTS references, a flat
#: intercept, exact WBB, generator, tables, plots, SBC) but not every combination: compilation,
#: not arithmetic, dominates at tiny sizes (~10 s per scheme and data set).
SMOKE_PROBLEMS = ("ridge", "breast_cancer_flat")
SMOKE_SCHEMES = ("anchored",)
TARGET_SD = (0.9, 1.1)
TARGET_COV90 = (0.85, 0.95)


# ----------------------------------------------------------------------------- models
# Module-level functions: AmortizedWBB matches results to models by qualified name.


def ridge_model(X, y=None, *, lam=1.0, sigma=1.0):
    """Conjugate ridge: β ~ N(0, I/λ), y ~ N(Xβ, σ²) with σ known."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def logistic_flat_model(X, y=None, *, lam=1.0):
    """L2 logistic regression with an unpenalised intercept b0 ~ ImproperUniform(ℝ)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    b0 = numpyro.sample("b0", dist.ImproperUniform(constraints.real, (), ()))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b0 + X @ beta), obs=y)


def ridge_posterior(X, y, lam, sigma=1.0):
    """Mean and covariance of the conjugate ridge posterior (float64)."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    A = X.T @ X / sigma**2 + lam * np.eye(X.shape[1])
    cov = np.linalg.inv(A)
    return cov @ X.T @ y / sigma**2, cov


def ridge_reference(X, y, grid, *, sigma=1.0, num_chains=4, num_samples=1000, seed=0):
    """i.i.d. draws of the exact ridge posterior at each λ, as InferenceData with the
    layout of :func:`wbbgen.nuts_reference` (so :func:`wbbgen.calibration` can consume it)."""
    from wbbgen.convert import build_inference_data

    rng = np.random.default_rng(seed)
    p = np.shape(X)[1]
    draws = np.empty((num_chains, num_samples, len(grid), p))
    for k, lam in enumerate(grid):
        mean, cov = ridge_posterior(X, y, lam, sigma)
        z = rng.standard_normal((num_chains, num_samples, p))
        draws[:, :, k] = mean + z @ np.linalg.cholesky(cov).T
    return build_inference_data({"beta": draws}, {"lam": np.asarray(grid)})


def separable(X, y) -> bool:
    """Whether a hyperplane separates the classes (LP feasibility of s_i(x_iᵀw + b) ≥ 1):
    then the MLE does not exist and the posterior at small λ is wide and skewed."""
    from scipy.optimize import linprog

    X, s = np.asarray(X, np.float64), 2 * np.asarray(y, np.float64) - 1
    A = -(s[:, None] * np.c_[X, np.ones(len(s))])
    res = linprog(
        np.zeros(A.shape[1]), A_ub=A, b_ub=-np.ones(len(s)), bounds=[(None, None)] * A.shape[1], method="highs"
    )
    return bool(res.status == 0)


def first_order_sd_ratio(X, y, lam, scheme, *, kind="logistic", b0_prec=None, sigma=1.0):
    r"""First-order (delta-method) prediction of the WBB / posterior sd ratio per coordinate.

    At the MAP θ* with H the data term's Hessian (Fisher information), B = Σᵢ sᵢsᵢᵀ the
    empirical covariance of the per-observation scores (what Exp(1) weights inject), Λ the
    prior precision and A = H + Λ, the WBB covariance is A⁻¹ M A⁻¹ with M = B + Λ
    (``anchored``), B (``fixed``) or B + Λθ*θ*ᵀΛ (``random``: (w₀ − 1)·Λθ* perturbs the
    score), while the posterior's is A⁻¹ (Laplace). Returns √(diag(A⁻¹MA⁻¹)/diag(A⁻¹)),
    coordinates β₁…β_p then the intercept (``kind="logistic"``; ``b0_prec`` its prior
    precision, 0 for flat) or β only (``kind="ridge"``, σ known).
    """
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    if kind == "ridge":
        H = X.T @ X / sigma**2
        L = lam * np.eye(X.shape[1])
        theta = np.linalg.solve(H + L, X.T @ y / sigma**2)
        r = y - X @ theta
        B = (X * (r**2 / sigma**4)[:, None]).T @ X
    else:
        X1 = np.c_[X, np.ones(len(y))]
        prec = np.r_[np.full(X.shape[1], lam), b0_prec]
        L = np.diag(prec)
        theta = np.zeros(X1.shape[1])
        f = lambda t: np.sum(np.logaddexp(0, X1 @ t) - y * (X1 @ t)) + 0.5 * np.sum(prec * t**2)  # noqa: E731
        for _ in range(200):  # Newton with backtracking, float64
            p = 1 / (1 + np.exp(-(X1 @ theta)))
            g = X1.T @ (p - y) + prec * theta
            step = np.linalg.solve((X1 * (p * (1 - p))[:, None]).T @ X1 + L, g)
            t = 1.0
            while f(theta - t * step) > f(theta) - 1e-4 * t * (g @ step) and t > 1e-10:
                t /= 2
            theta = theta - t * step
            if g @ step < 1e-20:
                break
        p = 1 / (1 + np.exp(-(X1 @ theta)))
        H = (X1 * (p * (1 - p))[:, None]).T @ X1
        B = (X1 * ((y - p) ** 2)[:, None]).T @ X1
    M = {"anchored": B + L, "fixed": B, "random": B + np.outer(L @ theta, L @ theta)}[scheme]
    Ai = np.linalg.inv(H + L)
    return np.sqrt(np.diag(Ai @ M @ Ai) / np.diag(Ai))


def predicted(name, model_args, grid, scheme) -> list[float]:
    """Median over coordinates of :func:`first_order_sd_ratio` at each λ of the grid."""
    X, y = model_args
    if name == "ridge":
        kw = {"kind": "ridge"}
    else:
        kw = {"b0_prec": 0.0 if name == "breast_cancer_flat" else 1e-2}
    return [float(np.median(first_order_sd_ratio(X, y, float(lam), scheme, **kw))) for lam in grid]


# ----------------------------------------------------------------------------- sizes


@dataclass
class Sizes:
    grid: list = field(default_factory=lambda: np.logspace(-2, 3, 6).tolist())
    num_samples: int = 1000  # WBB draws per λ (exact and generator)
    nuts_chains: int = 4
    nuts_warmup: int = 1000
    nuts_samples: int = 1000
    num_steps: int = 6000  # generator training steps
    batch_size: int = 256
    ridge_n: int = 100
    ridge_p: int = 10
    synth_n: int = 1000
    synth_p: int = 10
    bc_rows: int | None = None  # None: the whole training split
    bc_cols: int | None = None
    sbc_replicates: int = 1000
    sbc_draws: int = 99


FULL = Sizes()
SMOKE = Sizes(
    grid=[0.1, 100.0],
    num_samples=64,
    nuts_chains=1,
    nuts_warmup=60,
    nuts_samples=60,
    num_steps=20,
    batch_size=16,
    ridge_n=30,
    ridge_p=3,
    synth_n=60,
    synth_p=3,
    bc_rows=60,
    bc_cols=3,
    sbc_replicates=50,
    sbc_draws=19,
)


def make_data(name: str, sizes: Sizes, dtype):
    """``(model, args, info)`` of a data set at the given sizes."""
    from wbbgen.datasets import breast_cancer
    from wbbgen.demo import logistic_model

    if name == "ridge":
        rng = np.random.default_rng(1)
        n, p = sizes.ridge_n, sizes.ridge_p
        X = rng.standard_normal((n, p))
        beta = 0.5 * rng.standard_normal(p)
        y = X @ beta + rng.standard_normal(n)
        info = {"n": n, "p": p, "signal_var": float(beta @ beta), "sigma": 1.0, "reference": "exact Gaussian"}
        return ridge_model, (X.astype(dtype), y.astype(dtype)), info
    if name == "synthetic_logistic":
        rng = np.random.default_rng(2)
        n, p = sizes.synth_n, sizes.synth_p
        X = rng.standard_normal((n, p))
        beta = 0.5 * np.resize([1.0, -1.0, 0.8, -0.8, 0.6, -0.6, 0.4, -0.4, 0.2, -0.2], p)
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(X @ beta - 0.3)))).astype(float)
        info = {"n": n, "p": p, "beta_norm": float(np.linalg.norm(beta)), "b0": -0.3, "reference": "NUTS"}
        return logistic_model, (X.astype(dtype), y.astype(dtype)), info | {"separable": separable(X, y)}
    if name in ("breast_cancer", "breast_cancer_flat"):
        d = breast_cancer(dtype=np.float64)
        X, y = d.X_train[: sizes.bc_rows, : sizes.bc_cols], d.y_train[: sizes.bc_rows]
        model = logistic_model if name == "breast_cancer" else logistic_flat_model
        intercept = "N(0, 10²)" if name == "breast_cancer" else "flat (ImproperUniform)"
        info = {"n": X.shape[0], "p": X.shape[1], "intercept_prior": intercept, "reference": "NUTS"}
        return model, (X.astype(dtype), y.astype(dtype)), info | {"separable": separable(X, y)}
    raise ValueError(f"unknown data set {name!r}; choose from {PROBLEMS}")


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


class _Recorder:
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


def _timed(fn, *args, **kwargs):
    import jax

    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(jax.tree_util.tree_leaves(dict(out)) if isinstance(out, dict) else out)
    return out, time.perf_counter() - t0


def run_problem(name: str, sizes: Sizes, schemes=SCHEMES, *, dtype=np.float32, seed=0, record=None, log=print):
    """Reference, exact WBB and a generator per scheme on one data set.

    Returns ``(entry, cals)``: the JSON entry and ``{(scheme, path): calibration Dataset}``.
    """
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist

    from wbbgen import AmortizedWBB, calibration, exact_wbb, nuts_reference

    record = record or _Recorder()
    model, args, info = make_data(name, sizes, dtype)
    grid = np.asarray(sizes.grid, dtype)
    jargs = tuple(jnp.asarray(a) for a in args)
    k_ref, k_draw, k_train = jax.random.split(jax.random.key(seed), 3)
    timings = {}

    log(f"[{name}] reference ...")
    if name == "ridge":
        ref, timings["reference_s"] = _timed(
            ridge_reference, *args, grid, num_chains=sizes.nuts_chains, num_samples=sizes.nuts_samples, seed=seed
        )
    else:
        ref, timings["reference_s"] = _timed(
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
        exact, t_exact = _timed(
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
        result, t_train = _timed(
            record, f"{name}/{scheme}/train", infer.run, k_train, *jargs, num_steps=sizes.num_steps, progress_bar=False
        )
        gen, t_gen_first = _timed(
            record,
            f"{name}/{scheme}/gen",
            infer.get_samples,
            k_draw,
            result,
            hyper={"lam": grid},
            num_samples=sizes.num_samples,
        )
        _, t_gen = _timed(
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


# ----------------------------------------------------------------------------- outputs


def plot_problem(name, cals, grid, path):
    """One figure per data set: rows = schemes, columns = sd ratio and 90 % coverage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from wbbgen import plot_calibration

    schemes = [s for s in SCHEMES if (s, "exact") in cals]
    fig, axes = plt.subplots(len(schemes), 2, figsize=(9, 2.9 * len(schemes)), squeeze=False, constrained_layout=True)
    colors = {"exact": "C0", "generator": "C3"}
    for row, scheme in zip(axes, schemes, strict=True):
        for method in ("exact", "generator"):
            n_lines = [len(a.lines) for a in row]
            n_coll = [len(a.collections) for a in row]
            plot_calibration(cals[scheme, method], ax=row)
            for a, nl, nc in zip(row, n_lines, n_coll, strict=True):
                for line in a.lines[nl:]:
                    if line.get_marker() not in (None, "None", ""):
                        line.set_color(colors[method])
                for coll in a.collections[nc:]:
                    coll.set_color(colors[method])
                    coll.set_alpha(0.15)
        for a in row:
            a.set_title(f"{scheme}: {a.get_title()}", fontsize="medium")
            if a.get_legend() is not None:
                a.get_legend().remove()
    handles = [
        Line2D([], [], color=c, marker="o", label=f"{m} WBB (median over coordinates, IQR band)")
        for m, c in colors.items()
    ]
    handles.append(matplotlib.patches.Patch(color="0.85", label="target band"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize="small")
    fig.suptitle(f"{name}: WBB vs reference posterior over λ")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pm(x, se, digits=2):
    if x is None:
        return "–"
    return f"{x:.{digits}f} ± {se:.{digits}f}" if se is not None else f"{x:.{digits}f}"


def markdown(report: dict) -> str:
    """The tables of ``calibration.md``."""
    lines = [
        "# WBB calibration by prior scheme",
        "",
        f"Sizes: {report['sizes_label']}; dtype {report['dtype']}; {report['platform']}. "
        "Cells: median over coordinates ± MCSE (sd ratio, 90 % coverage); largest |mean shift| "
        "in reference sd ± its MCSE. ✓ = both medians inside the target (sd ratio in [0.9, 1.1], "
        "coverage in [0.85, 0.95]).",
        "",
        "## Target met (λ values out of the grid)",
        "",
        "| data set | " + " | ".join(f"{s} exact | {s} generator" for s in report["schemes"]) + " |",
        "|---|" + "---|---|" * len(report["schemes"]),
    ]
    for name, entry in report["problems"].items():
        cells = []
        for s in report["schemes"]:
            for path in ("exact", "generator"):
                rows = entry["schemes"][s][path]
                cells.append(f"{sum(r['meets_target'] for r in rows)}/{len(rows)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Per λ",
        "",
        "Columns: exact and generator WBB vs the reference; *first order*: the delta-method "
        "prediction of the exact median sd ratio (`first_order_sd_ratio`); *b0*: the intercept's own "
        "sd ratio (exact), hidden by the median; *paired*: generator vs exact WBB on identical "
        "draws (median sd ratio / largest |mean difference| in exact sd).",
        "",
    ]
    head = (
        "| data set | scheme | λ | exact sd ratio | first order | b0 | exact cov 90 | exact max\\|shift\\| "
        "| gen sd ratio | gen cov 90 | gen max\\|shift\\| | paired gen/exact |"
    )
    lines += [head, "|" + "---|" * (head.replace("\\|", "").count("|") - 1)]
    for name, entry in report["problems"].items():
        for s in report["schemes"]:
            per = entry["schemes"][s]
            first = per.get("first_order_sd_ratio", [None] * len(per["exact"]))
            for e, g, f, r1 in zip(per["exact"], per["generator"], per["generator_vs_exact"], first, strict=True):
                cells = []
                for r in (e, g):
                    mark = " ✓" if r["meets_target"] else ""
                    b0 = e["per_param"].get("b0", {}).get("sd_ratio") if r is e else None
                    cells += [_pm(r["sd_ratio"], r["sd_ratio_mcse"]) + mark]
                    if r is e:
                        cells += ["–" if r1 is None else f"{r1:.2f}", "–" if b0 is None else f"{b0:.2f}"]
                    cells += [
                        _pm(r["coverage_90"], r["coverage_90_mcse"]),
                        _pm(r["max_abs_mean_shift"], r["max_abs_mean_shift_mcse"])
                        + f" ({r['max_abs_mean_shift_param']})",
                    ]
                paired = f"{f['sd_ratio']:.3f} / {f['max_abs_mean_shift']:.2f}"
                lines.append(f"| {name} | {s} | {e['lam']:g} | " + " | ".join(cells) + f" | {paired} |")
    lines += ["", "## Wall times (s, first calls, compilation included)", ""]
    lines += [
        "| data set | reference (NUTS / exact Gaussian) | scheme | exact WBB grid | generator training "
        "| generator eval (first / warm) |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in report["problems"].items():
        for s in report["schemes"]:
            t = entry["schemes"][s]["timings"]
            lines.append(
                f"| {name} | {entry['timings']['reference_s']:.1f} | {s} | {t['exact_wbb_grid_s']:.1f} | "
                f"{t['generator_train_s']:.1f} | {t['generator_eval_first_s']:.2f} / {t['generator_eval_s']:.3f} |"
            )
    if report.get("sbc"):
        lines += ["", "## Simulation-based calibration (anchored exact WBB, conjugate ridge)", ""]
        lines += ["| λ | chi-square | dof | p-value |", "|---|---|---|---|"]
        for r in report["sbc"]["results"]:
            lines.append(f"| {r['lam']:g} | {r['chi2']:.1f} | {r['dof']} | {r['p_value']:.3f} |")
    if report["warnings"]:
        lines += ["", "## Warnings recorded", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (< 60 s)")
    parser.add_argument("--x64", action="store_true", help="float64 everywhere")
    parser.add_argument(
        "--problems",
        nargs="+",
        default=None,
        choices=PROBLEMS,
        help=f"default: all (smoke: {' '.join(SMOKE_PROBLEMS)})",
    )
    parser.add_argument(
        "--schemes", nargs="+", default=None, choices=SCHEMES, help=f"default: all (smoke: {' '.join(SMOKE_SCHEMES)})"
    )
    parser.add_argument("--num-steps", type=int, default=None, help="generator training steps")
    parser.add_argument("--no-sbc", action="store_true")
    parser.add_argument("--markdown-only", action="store_true", help="re-render calibration.md from calibration.json")
    args = parser.parse_args(argv)
    if args.markdown_only:
        report = json.loads((args.out / "calibration.json").read_text())
        (args.out / "calibration.md").write_text(markdown(report))
        return report

    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    sizes = SMOKE if args.smoke else FULL
    if args.problems is None:
        args.problems = list(SMOKE_PROBLEMS if args.smoke else PROBLEMS)
    if args.schemes is None:
        args.schemes = list(SMOKE_SCHEMES if args.smoke else SCHEMES)
    if args.num_steps:
        sizes = Sizes(**{**asdict(sizes), "num_steps": args.num_steps})
    args.out.mkdir(parents=True, exist_ok=True)
    record = _Recorder()
    t_start = time.perf_counter()
    report = {
        "sizes_label": "smoke" if args.smoke else "full",
        "sizes": asdict(sizes),
        "dtype": np.dtype(dtype).name,
        "platform": f"{jax.devices()[0].platform}, {os.cpu_count()} CPU cores, jax {jax.__version__}",
        "schemes": list(args.schemes),
        "target": {"sd_ratio": list(TARGET_SD), "coverage_90": list(TARGET_COV90)},
        "problems": {},
    }
    for name in args.problems:
        entry, cals = run_problem(name, sizes, args.schemes, dtype=dtype, record=record)
        report["problems"][name] = entry
        plot_problem(name, cals, sizes.grid, args.out / f"calibration_{name}.png")
    if not args.no_sbc:
        sys.path.insert(0, str(HERE))
        import sbc

        print("[sbc] simulation-based calibration ...")
        res, t_sbc = _timed(sbc.run_sbc, num_replicates=sizes.sbc_replicates, num_draws=sizes.sbc_draws, dtype=dtype)
        report["sbc"] = sbc.to_json(res) | {"wall_s": t_sbc}
        sbc.plot_ranks(res, args.out / "sbc_ranks.png")
    report["warnings"] = record.messages
    report["total_wall_s"] = time.perf_counter() - t_start
    (args.out / "calibration.json").write_text(json.dumps(report, indent=1, allow_nan=False))
    (args.out / "calibration.md").write_text(markdown(report))
    print(f"wrote {args.out}/calibration.json, calibration.md and plots in {report['total_wall_s']:.0f} s")
    return report


if __name__ == "__main__":
    main()
