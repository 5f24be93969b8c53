"""The outputs of the calibration study: one figure per data set and the markdown tables."""

from __future__ import annotations

from wbbgen import plot_calibration
from wbbgen.bench.calibration.data import SCHEMES
from wbbgen.posterior_check import K_HAT_MAX

__all__ = ["plot_problem", "markdown", "flagged"]

# ----------------------------------------------------------------------------- outputs


def plot_problem(name, cals, grid, path):
    """One figure per data set: rows = schemes, columns = sd ratio and 90 % coverage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

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


def flagged(row: dict) -> bool:
    """Whether the posterior check flags a cell (Pareto k̂ > 0.7)."""
    if "posterior_check_flagged" in row:
        return bool(row["posterior_check_flagged"])
    return row.get("pareto_k") is not None and row["pareto_k"] > K_HAT_MAX


def _posterior_check_lines(report: dict) -> list[str]:
    """Misses of the target band against the posterior check's flags (k̂ > 0.7, or reweighting
    moves the draws out of the band), per path."""
    lines = [
        "",
        "## Posterior check against the target band",
        "",
        "Per data set, scheme and path, over the λ grid: *missed*: cells outside the target band; "
        "*flagged*: of those, cells the posterior check flags (k̂ > 0.7, or its reweighted draws move a "
        "coordinate's sd by over 10 % or its mean by over 0.1 sd beyond Monte Carlo error); *silent*: missed "
        "and not flagged; *false alarms*: inside the band and flagged. Then k̂ per λ.",
        "",
        "| data set | scheme | path | missed | flagged | silent | false alarms | k̂ per λ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["problems"].items():
        for s in report["schemes"]:
            for path in ("exact", "generator"):
                rows = entry["schemes"][s][path]
                if not any("pareto_k" in r for r in rows):
                    continue
                miss = [not r["meets_target"] for r in rows]
                flag = [flagged(r) for r in rows]
                ks = " ".join(
                    f"{r['pareto_k']:.2f}" if r.get("pareto_k") is not None else ("inf" if flagged(r) else "n/a")
                    for r in rows
                )
                lines.append(
                    f"| {name} | {s} | {path} | {sum(miss)} | {sum(m and f for m, f in zip(miss, flag))} | "
                    f"{sum(m and not f for m, f in zip(miss, flag))} | "
                    f"{sum(f and not m for m, f in zip(miss, flag))} | {ks} |"
                )
    return lines


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
    lines += _posterior_check_lines(report)
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
