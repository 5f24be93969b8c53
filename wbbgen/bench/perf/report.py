"""The outputs of ``wbbgen bench perf`` from its results: the markdown table and the plots."""

from __future__ import annotations

from pathlib import Path

__all__ = ["describe", "render", "write_outputs"]


def describe(key: str, r: dict) -> str:
    """One target's measured figure with its main parts, in words."""
    if r.get("error"):
        return f"error: {r['error'][:100]}"
    if r.get("figure") is None:
        return r.get("note") or "not measured"
    f = r["figure"]
    if key == "P1":
        t = r["times_s"]
        return (
            f"{f:.1f}× (NUTS {t['nuts_grid']:.0f} s vs amortized {t['amortized_end_to_end']:.0f} s "
            f"[compile {t['amortized_train_compile']:.0f} s]; exact WBB {t['exact_wbb_grid']:.0f} s"
            + (
                f"; first-order + 2 Newton steps {t['first_order_refine2_grid']:.1f} s = "
                f"{r['first_order_refine2_vs_nuts']:.0f}× NUTS, median sd ratio "
                f"{r['first_order_refine2_fidelity']['median_sd_ratio_min']:.2f}–"
                f"{r['first_order_refine2_fidelity']['median_sd_ratio_max']:.2f} of exact)"
                if "first_order_refine2_grid" in t
                else ")"
            )
        )
    if key == "P2":
        t = r["times_s"]
        scaled = "" if r.get("exact_time", "measured") == "measured" else f" [{r['exact_time']}]"
        return (
            f"{f['time_ratio']:.2f}× (exact refits {t['exact_refits']:.0f} s{scaled} vs amortized "
            f"{t['amortized_end_to_end']:.0f} s); test accuracy gap {f['test_accuracy_gap_pp']:.1f} pp"
        )
    if key == "P3":
        t = r["times_ms"]
        return (
            f"{f:.1f} ms (samples {t['get_samples_ms']:.1f} [generator {t['generator_forward_ms']:.1f}] + curve "
            f"{t['criterion_curve_ms']:.1f}; first call {t['first_get_samples_ms_with_compile']:.0f} ms)"
        )
    if key == "P5":
        t = r["times_s"]
        return (
            f"{f:.2f} GB peak at n = {r['n']:.0e}, p = {r['p']} ({t['per_step_ms']:.1f} ms/step, "
            f"compile {t['train_compile']:.0f} s, pilot {t['pilot']:.0f} s)"
        )
    if key == "P6":
        return f"sd {f['worst_sd_error']:.3f}, mean {f['worst_mean_error']:.3f} sd"
    return str(f)


def render(results: dict, targets) -> str:
    """The markdown table: each target's figure beside its goal, in the order of ``targets``."""
    lines = ["| target | measured | goal | met | device |", "|---|---|---|---|---|"]
    for key in targets:
        if key not in results:
            continue
        r = results[key]
        met = {True: "yes", False: "no", None: "—"}[r.get("met")]
        goal = r.get("goal")
        if isinstance(goal, dict):
            goal = ", ".join(f"{k} {v:g}" for k, v in goal.items())
        lines.append(f"| {key} | {describe(key, r)} | {goal} | {met} | {r.get('device', '')} |")
    note = "smoke sizes: figures check the pipeline, not the targets" if results.get("smoke") else "full sizes"
    return "\n".join(lines) + f"\n\n({note}; 1-min load average during the run in perf.json)\n"


def write_outputs(results: dict, out: Path, targets) -> str:
    """Write ``perf.md`` and the plots of P1 and P3 (where measured) to ``out``; return the table."""
    text = render(results, targets)
    (out / "perf.md").write_text(text)
    if results.get("P1", {}).get("figure") is not None:
        _plot_p1(results["P1"], out / "perf_times.png")
    if results.get("P3", {}).get("figure") is not None:
        _plot_p3(results["P3"], out / "perf_p3.png")
    return text


def _plot_p1(p1, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = p1["times_s"]
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    ax.barh(["NUTS (grid)"], [t["nuts_grid"]], color="#888")
    ax.barh(["exact WBB (grid)"], [t["exact_wbb_grid"]], color="#4c72b0")
    if "first_order_refine2_grid" in t:
        ax.barh(["first order + 2 Newton (grid)"], [t["first_order_refine2_grid"]], color="#55a868")
    parts = [
        ("pilot", t["amortized_pilot"]),
        ("compile", t["amortized_train_compile"]),
        ("train", t["amortized_train_run"]),
        ("fidelity", t["amortized_fidelity"]),
        ("evaluate", t["amortized_first_grid_evaluation"]),
    ]
    parts.append(("setup, checks", max(0.0, t["amortized_end_to_end"] - sum(v for _, v in parts))))
    left = 0.0
    for (name, v), c in zip(parts, ["#f2c09b", "#c44e52", "#dd8452", "#e6a57a", "#8c564b", "#bbbbbb"]):
        ax.barh(["AmortizedWBB (end to end)"], [v], left=left, color=c, label=name)
        left += v
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    ax.set_xlabel("wall time (s), same grid and draws")
    ax.set_title(f"P1: {p1['setup']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_p3(p3, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {"default": p3["times_ms"], **p3.get("narrower_generators", {})}
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    names = list(rows)
    gen = [rows[k]["generator_forward_ms"] for k in names]
    rest = [rows[k]["get_samples_ms"] - rows[k]["generator_forward_ms"] for k in names]
    curve = [rows[k]["criterion_curve_ms"] for k in names]
    ax.barh(names, gen, color="#dd8452", label="generator")
    ax.barh(names, rest, left=gen, color="#f2c09b", label="rest of get_samples")
    ax.barh(names, curve, left=[a + b for a, b in zip(gen, rest)], color="#4c72b0", label="criterion curve")
    ax.axvline(p3["goal"], color="k", ls="--", lw=1, label=f"goal {p3['goal']:g} ms")
    ax.set_xlabel("ms, warm")
    ax.set_title(f"P3: {p3['setup']}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
