"""summary.md and plots of a run folder, rendered only from what the folder stores."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import ablation_report, anomaly_report, music_report  # noqa: E402
from bench.io import atomic_write_bytes, atomic_write_text  # noqa: E402
from bench.metrics import column_direction, metric_columns  # noqa: E402
from bench.metrics.likelihood import ModelMetric  # noqa: E402
from bench.registry import METRICS  # noqa: E402
from bench.results import DIAGNOSTIC_COLUMNS as DIAGNOSTICS  # noqa: E402
from bench.results import PERFORMANCE_COLUMNS as PERFORMANCE  # noqa: E402
from bench.results import final_steps, read_results  # noqa: E402
from bench.stats import mean_ci  # noqa: E402

# Norms that change by less than one decade from the first to the last hidden layer count as level.
LEVEL_DECADES = 1.0


def render(run_dir: Path) -> Path:
    """Write summary.md and plots/*.png for `run_dir`; returns the summary's path."""
    run_dir = Path(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    env = json.loads((run_dir / "env.json").read_text())
    df = read_results(run_dir)
    # Rows in the suite's order of variants and datasets, whatever order the cells finished in.
    order = {
        "variant": list(cfg["variants"]),
        "dataset": list(dict.fromkeys(d for v in cfg["variants"].values() for d in v["datasets"])),
    }
    for col, cats in order.items():
        df[col] = pd.Categorical(df[col], categories=cats + sorted(set(df[col]) - set(cats)))
    df = df.sort_values(["variant", "dataset", "seed", "step"]).reset_index(drop=True)
    final = final_steps(df)
    plots = run_dir / "plots"
    lines = _header(cfg, env, run_dir)
    lines += _status(df, final)
    if cfg.get("task") == "anomaly_detection":  # one table per metric over the datasets' digits
        lines += anomaly_report.section(cfg, final)
    elif cfg.get("task") == "music":  # MuseGAN's tables, with the data's rows and distance tests
        lines += music_report.section(cfg, final, run_dir)
    else:
        lines += _results(cfg, final)
        lines += _ranking(cfg, final)
        lines += ablation_report.section(cfg, final)
    lines += _claims(cfg, final)
    lines += _critic_tracks_quality(df)
    lines += _pile_up(cfg, final, run_dir, plots)
    lines += _depth(cfg, final, plots)
    lines += _performance(cfg, df, final)
    lines += _curves(cfg, df, run_dir, plots)
    lines += _glossary()
    path = run_dir / "summary.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


# --- Sections ------------------------------------------------------------------------------------


def _workers(env: dict) -> str:
    """How cells ran: local worker processes, or Ray tasks on a cluster of so many nodes."""
    ex = env.get("executor", {"kind": "local"})
    if ex["kind"] != "ray":
        return f"{env.get('workers')} worker(s)"
    cap = f"at most {env['workers']} at once" if env.get("workers") else "as many at once as fit"
    cluster = ", ".join(f"{v:g} {k}" for k, v in ex.get("cluster", {}).items())
    return (f"Ray tasks of {ex['cpus_per_cell']:g} CPU and {ex['gpus_per_cell']:g} GPU, {cap}, "
            f"on {ex['nodes']} node(s) ({cluster})")  # fmt: skip


def _header(cfg: dict, env: dict, run_dir: Path) -> list[str]:
    git = env.get("git", {})
    commit = git.get("commit") or f"unknown ({git.get('unknown_because', '')})"
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    dev = env.get("device", {})
    return [
        f"# {cfg['suite']} — profile `{cfg['profile']}`",
        "",
        " ".join(cfg["description"].split()),
        "",
        f"- Budget: **{cfg['budget']['gen_steps']} generator steps per cell**, batch "
        f"{cfg['train']['batch_size']}; images seen and training seconds are in `results.csv`.",
        f"- Seeds: {', '.join(map(str, cfg['seeds']))}. Intervals are 95% Student-t intervals of the "
        "mean over seeds at the final step.",
        _evaluation_line(cfg),
        f"- Device: {dev.get('type')} ({dev.get('name', 'on the cluster')}), {_workers(env)} × "
        f"{env.get('torch_threads_per_worker')} torch thread(s); torch "
        f"{env.get('packages', {}).get('torch')}; commit `{commit}`{dirty}.",
        f"- Run folder: `{run_dir.name}`; every number below is re-made by `bench report` from "
        "`results.csv`.",
        "",
    ]


def _status(df: pd.DataFrame, final: pd.DataFrame) -> list[str]:
    counts = final["status"].value_counts().to_dict()
    lines = ["## Cells", "", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".", ""]
    bad = final[final["status"] != "ok"]
    for _, row in bad.iterrows():
        note = row.get("note") if isinstance(row.get("note"), str) else ""
        lines.append(f"- `{row['variant']}` on `{row['dataset']}`, seed {row['seed']}: "
                     f"**{row['status']}** at step {row['step']}. {note}")  # fmt: skip
    return lines + ([""] if len(bad) else [])


def _table(final: pd.DataFrame, columns: list[str], by: list[str]) -> list[str]:
    header = "| " + " | ".join(by + columns) + " |"
    lines = [header, "|" + "---|" * (len(by) + len(columns))]
    for key, group in final.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = [mean_ci(group[c]).format() if c in group else "n/a" for c in columns]
        lines.append("| " + " | ".join([*(f"`{k}`" for k in key), *cells]) + " |")
    return lines


def _results(cfg: dict, final: pd.DataFrame) -> list[str]:
    lines = ["## Sample quality at the final step", ""]
    ok = final[final["status"] == "ok"]
    for dataset, group in ok.groupby("dataset", sort=False):
        filled = metric_columns(cfg["metrics"], _own_columns(group))
        cols = [c for c in filled if group[c].notna().any()]
        missing = [c for c in filled if c not in cols]
        missing += [m for m in cfg["metrics"] if not metric_columns([m], group.columns)]
        lines += [f"### {dataset}", "", *_table(group, cols, ["variant"]), ""]
        notes = group["note"].dropna().unique() if "note" in group else []
        if missing:
            why = "; ".join(notes) or "no value was recorded"
            lines += [f"Not computed here: {', '.join(missing)} ({why}).", ""]
        # Entries with an empty column the others fill (a GAN's bits_per_dim): the reason, from
        # the entry's own notes.
        for variant, rows in group.groupby("variant", sort=False):
            empty = [c for c in cols if rows[c].isna().all()]
            if empty and not missing:
                why = "; ".join(rows["note"].dropna().unique()) if "note" in rows else ""
                lines.append(f"- `{variant}` (n/a above): {why or 'no value was recorded'}.")
        if lines[-1].startswith("- "):
            lines.append("")
    return lines


def _own_columns(group: pd.DataFrame) -> list[str]:
    """The columns of one dataset's rows, less those of backbones that measured other datasets: a
    suite on mnist5k and mnist5k_bin has `fid/lenet-mnist5k` and `fid/lenet-mnist5k_bin`, each
    empty in the other's rows. A backbone none of whose columns has a value here is not this
    dataset's."""
    backbones = {c.split("/", 1)[1] for c in group.columns if c.startswith("backbone_sha256/")}
    foreign = {b for b in backbones if group[f"backbone_sha256/{b}"].isna().all()}
    return [c for c in group.columns if "/" not in c or c.split("/", 1)[1] not in foreign]


def _ranking(cfg: dict, final: pd.DataFrame) -> list[str]:
    """Variants ranked by mean over seeds, with a test of every pair on the primary metric."""
    from bench.stats import pairwise, rank

    ok = final[final["status"] == "ok"]
    if ok.empty or ok["variant"].nunique() < 2:
        return []
    lines = ["## Ranking, with significance", "",
             "Variants ordered by their mean over seeds at the final step (best first, 95% CI). "
             "The first metric of the suite is the primary one: every pair of variants is tested "
             "on it with a two-sided Welch t-test over seeds (α = 0.05, no correction for "
             "multiple comparisons; a rank test could not reject anything with 3 seeds).", ""]  # fmt: skip
    for dataset, group in ok.groupby("dataset", sort=False):
        columns = [
            c
            for c in metric_columns(cfg["metrics"], group.columns)
            if column_direction(c) is not None
        ]
        columns = [c for c in columns if group[c].notna().any()]
        if not columns:
            continue
        lines += [f"### {dataset}", ""]
        tested = cfg.get("report", {}).get("tested", [])
        for i, col in enumerate(columns):
            higher = bool(column_direction(col))
            # Inception KID is shown ×100, as the papers that report it (U-GAT-IT, NICE-GAN); in a
            # domain classifier's features KID is tens already and is shown as it is.
            scale, shown_as = (100, f"{col} ×100") if col.startswith("kid/inception") else (1, col)
            values = {v: (g[col].dropna() * scale).tolist()
                      for v, g in group.groupby("variant", sort=False)}  # fmt: skip
            ranked = rank(values, higher)
            order = " > ".join(f"`{v}` {ci.format()}" for v, ci in ranked)
            lines.append(f"- **{shown_as}** ({'higher' if higher else 'lower'} is better): {order}")
            if i == 0 or col.split("/")[0] in tested:
                # Only entries with values are compared (a GAN has no bits_per_dim to test).
                measured = {v: x for v, x in values.items() if mean_ci(x).n}
                lines += [f"  - {pair.statement()}" for pair in pairwise(measured, higher)]
        lines.append("")
    return lines


def _claims(cfg: dict, final: pd.DataFrame) -> list[str]:
    """The suite's declared findings, each tested over seeds (what bench regress checks too)."""
    from bench.claims import check_all
    from bench.config import Claim

    claims = [Claim.model_validate(c) for c in cfg.get("claims", [])]
    if not claims:
        return []
    lines = ["## Claims", "", "Findings the suite declares, each tested on the final step over "
             "seeds with a one-sided t-test (`bench regress` fails when one does not hold):", ""]  # fmt: skip
    for result in check_all(claims, final, cfg["datasets"][0]):
        lines.append(f"- {result.claim.describe()}: {result.statement()}")
    return lines + [""]


def _critic_tracks_quality(df: pd.DataFrame) -> list[str]:
    """Spearman correlation of the critic loss with FID over each cell's evaluation points."""
    from scipy.stats import spearmanr

    fids = [c for c in df.columns if c.startswith("fid/")]
    ok = df[df["status"] == "ok"]
    if not fids or "critic_loss" not in ok or ok.empty:
        return []
    fid = fids[0]
    lines = ["## Does the critic's loss track sample quality?", "",
             f"Spearman rank correlation between the critic's loss and `{fid}` over each cell's "
             "evaluation points after step 0 (an untrained critic estimates nothing), mean ± 95% "
             "CI over seeds. Strongly negative: as FID falls the loss "
             "rises towards 0, i.e. the critic's distance estimate (−loss) falls with it (expected "
             "of WGAN and WGAN-GP); near zero: the loss says nothing about quality (expected of the "
             "original GAN's discriminator).", "",
             "| variant | dataset | Spearman ρ(critic loss, FID) |", "|---|---|---|"]  # fmt: skip
    for (variant, dataset), group in ok.groupby(["variant", "dataset"], sort=False):
        if group["critic_loss"].isna().all():
            continue  # a model without a critic (the likelihood models)
        rhos = []
        for _, cell in group[group["step"] > 0].groupby("seed"):
            cell = cell[["critic_loss", fid]].dropna()
            if len(cell) >= 3 and cell[fid].nunique() > 1 and cell["critic_loss"].nunique() > 1:
                rhos.append(float(spearmanr(cell["critic_loss"], cell[fid]).statistic))
        lines.append(f"| `{variant}` | `{dataset}` | {mean_ci(rhos).format() if rhos else 'n/a'} |")
    return lines + [""]


def _variant_of(cfg: dict, label: str) -> str:
    return cfg["variants"].get(label, {}).get("variant", label)


def _pile_up(cfg: dict, final: pd.DataFrame, run_dir: Path, plots: Path) -> list[str]:
    wass = [lbl for lbl in cfg["variants"] if _variant_of(cfg, lbl) in ("wgan", "wgan_gp")]
    rows = final[final["variant"].isin(wass) & (final["status"] == "ok")]
    if rows.empty or "clip_saturation" not in rows:
        return []
    lines = [
        "## Finding 1 — clipped critic weights pile up at ±c; gradient-penalty weights spread",
        "",
        "`clip_saturation` is the fraction of critic weights within 1% of the largest |w| of their "
        "layer (for a clipped critic, the mass at ±c). Final step, mean ± 95% CI over seeds:",
        "",
        *_table(rows, ["clip_saturation"], ["variant", "dataset"]),
        "",
    ]
    # Compare each clipped entry with each gradient-penalty entry of the same depth on the same data.
    for clip_label, gp_label, dataset in _pairs(cfg, rows):
        clip = mean_ci(_of(rows, clip_label, dataset)["clip_saturation"])
        gp = mean_ci(_of(rows, gp_label, dataset)["clip_saturation"])
        if clip.n < 2 or gp.n < 2:
            verdict = "one seed only, so no interval to judge the difference by"
        elif _separated(clip, gp) and clip.mean > gp.mean:
            verdict = "the paper's finding holds: the 95% intervals do not overlap"
        else:
            verdict = "not shown at this budget: the intervals overlap or the order is reversed"
        c = cfg["variants"][clip_label].get("clip_value")
        lines.append(
            f"- **{dataset}**: `{clip_label}` (c = {c}) {clip.mean:.1%} of weights at ±c vs "
            f"`{gp_label}` {gp.mean:.1%} at its layer maximum — {verdict}."
        )
    lines.append("")
    if _plot_histograms(cfg, final, wass, run_dir, plots / "weight_hist.png"):
        lines += ["![critic weight histograms](plots/weight_hist.png)", ""]
    return lines


def _of(rows: pd.DataFrame, label: str, dataset: str) -> pd.DataFrame:
    return rows[(rows["variant"] == label) & (rows["dataset"] == dataset)]


def _pairs(cfg: dict, rows: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(clipped entry, gradient-penalty entry, dataset) with equal depth, both present in `rows`."""
    entries = cfg["variants"]
    present = set(zip(rows["variant"], rows["dataset"], strict=True))
    return [
        (a, b, d)
        for a in entries
        for b in entries
        for d in entries[a]["datasets"]
        if entries[a]["variant"] == "wgan" and entries[b]["variant"] == "wgan_gp"
        and entries[a].get("depth") == entries[b].get("depth")
        and (a, d) in present and (b, d) in present
    ]  # fmt: skip


def _separated(a: Any, b: Any) -> bool:
    if a.n < 2 or b.n < 2:
        return False
    return (
        a.mean - a.half_width > b.mean + b.half_width
        or b.mean - b.half_width > a.mean + a.half_width
    )


def _layer_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith("act_grad_norm/"))


def _depth(cfg: dict, final: pd.DataFrame, plots: Path) -> list[str]:
    deep = [lbl for lbl, v in cfg["variants"].items() if v.get("depth", 0) >= 6]
    rows = final[final["variant"].isin(deep) & (final["status"] == "ok")]
    if rows.empty:
        return []
    lines = [
        "## Finding 2 — through a deep critic, clipped gradients explode or vanish; GP's stay level",
        "",
        "Norm of the gradient of the critic loss with respect to each hidden layer's activations "
        "(Gulrajani et al. 2017, Figure 1 left), final step. `act_grad_log10_slope` is the "
        "least-squares slope of log10(norm) against layer index, input side first, in decades per "
        f"layer. A profile counts as level when first and last layer differ by less than "
        f"{10**LEVEL_DECADES:g}×.",
        "",
        *_table(rows, ["act_grad_log10_slope", "clip_saturation"], ["variant", "dataset"]),
        "",
    ]
    for (label, dataset), group in rows.groupby(["variant", "dataset"], sort=False):
        cols = [c for c in _layer_columns(group) if group[c].notna().any()]
        norms = group[cols].mean()
        slope = mean_ci(group["act_grad_log10_slope"])
        span = norms.iloc[0] / norms.iloc[-1] if norms.iloc[-1] > 0 else math.inf
        decades = math.log10(span) if 0 < span < math.inf else math.inf
        if abs(decades) < LEVEL_DECADES:
            shape = "roughly level"
        elif span < 1:
            shape = "vanishing towards the input"
        else:
            shape = "exploding towards the input"
        lines.append(
            f"- `{label}` on {dataset}: first-layer / last-layer norm = {span:.2g} across "
            f"{len(cols)} layers ({slope.format()} decades per layer): **{shape}**."
        )
    lines.append("")
    if _plot_depth(rows, plots / "grad_norms.png"):
        lines += ["![gradient norm by layer](plots/grad_norms.png)", ""]
    return lines


def _performance(cfg: dict, df: pd.DataFrame, final: pd.DataFrame) -> list[str]:
    ok = final[final["status"] == "ok"]
    if ok.empty:
        return []
    perf = ok.copy()
    evals = df[df["status"] == "ok"].groupby(["variant", "dataset", "seed"])["eval_seconds"].mean()
    perf["eval_seconds"] = perf.set_index(["variant", "dataset", "seed"]).index.map(evals)
    cols = [c for c in ["images_seen", "train_seconds", *PERFORMANCE] if c in perf]
    return [
        "## Speed and memory",
        "",
        "Every entry trains for the same number of generator (optimiser) steps; `images_seen` and "
        "`train_seconds` say what that budget cost each one (real images drawn, critic steps "
        "included; seconds of training alone). Training throughput over training time only "
        "(evaluation excluded); `eval_seconds` is the mean time of one evaluation; "
        "`sample_s_per_image` the time to generate one evaluation sample; `peak_mem_mb` is the peak "
        "resident memory of the cell's process on CPU, or CUDA peak allocated on a GPU.",
        "",
        *_table(perf, cols, ["variant", "dataset"]),
        "",
        *_cost_ratios(cfg, ok),
    ]


def _cost_ratios(cfg: dict, ok: pd.DataFrame) -> list[str]:
    """Each variant's seconds per generator step and peak memory against the reference entry's."""
    reference = cfg.get("report", {}).get("cost_reference")
    if not reference or reference not in set(ok["variant"]):
        return []
    lines = [f"### Cost against `{reference}`", "",
             "Means over seeds: training seconds per generator step (critic steps included) and "
             "peak memory, and their ratio to the reference's on the same dataset.", "",
             "| variant | dataset | s / step | × | peak MB | × |", "|---|---|---|---|---|---|"]  # fmt: skip
    for dataset, group in ok.groupby("dataset", sort=False):
        per = group.assign(s_per_step=1 / group["gen_steps_per_s"]).groupby("variant", sort=False)
        means = per[["s_per_step", "peak_mem_mb"]].mean()
        if reference not in means.index:
            continue
        ref = means.loc[reference]
        for variant, m in means.iterrows():
            lines.append(f"| `{variant}` | `{dataset}` | {m['s_per_step']:.3g} | "
                         f"{m['s_per_step'] / ref['s_per_step']:.2f} | {m['peak_mem_mb']:.0f} | "
                         f"{m['peak_mem_mb'] / ref['peak_mem_mb']:.2f} |")  # fmt: skip
    return [*lines, ""]


def _curves(cfg: dict, df: pd.DataFrame, run_dir: Path, plots: Path) -> list[str]:
    lines = ["## Plots", ""]
    for dataset in df["dataset"].unique():
        name = f"curves_{dataset}.png"
        if _plot_curves(cfg, df[df["dataset"] == dataset], plots / name):
            lines += [f"![{dataset} curves](plots/{name})", ""]
        name = f"samples_{dataset}.png"
        if _plot_samples(df[df["dataset"] == dataset], run_dir, dataset, plots / name):
            lines += [f"![{dataset} samples](plots/{name})", ""]
    return lines


def _glossary() -> list[str]:
    return [
        "## Reading the results folder",
        "",
        "- `results.csv` / `results.parquet`: one row per variant entry, dataset, seed and "
        "evaluation step; `status` is ok, diverged (a non-finite loss; the row says at which step) or "
        "failed (the `note` says why). Empty metric cells were not computable; `note` says why.",
        "- `config.json`: the fully resolved suite (every default filled in); `env.json`: commit, "
        "package versions, device and threads.",
        "- `cells/<variant>__<dataset>__s<seed>/`: final weights of every network (`networks.pt`; "
        "the generator alone also in `generator.pt`), critic "
        "weight histograms at every evaluation (`weight_hist.npz`), final samples (`samples.npz`; an "
        "anomaly cell's `scores.npz` holds every test image's score, digit and status instead), "
        "and the cell's last checkpoint (`checkpoint.pt`), from which `bench resume` continues.",
    ]


# --- Plots ---------------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> bool:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def _grid(n: int, ncols: int = 3, size: float = 3.2) -> tuple[Any, np.ndarray]:
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size * ncols, size * 0.9 * nrows),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _plot_histograms(
    cfg: dict, final: pd.DataFrame, labels: list[str], run_dir: Path, path: Path
) -> bool:
    panels = []
    for label in labels:
        for dataset in cfg["variants"][label]["datasets"]:
            seed = min(cfg["seeds"])
            f = run_dir / "cells" / f"{label}__{dataset}__s{seed}" / "weight_hist.npz"
            if f.is_file():
                panels.append((label, dataset, np.load(f)))
    if not panels:
        return False
    fig, axes = _grid(len(panels))
    for ax, (label, dataset, h) in zip(axes, panels, strict=False):
        edges, counts = h["edges"][-1], h["counts"][-1]
        ax.stairs(counts, edges, fill=True, alpha=0.7)
        ax.set_title(f"{label} · {dataset}", fontsize=8)
        ax.set_xlabel("critic weight", fontsize=7)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        ax.tick_params(labelsize=6)
    step = int(panels[0][2]["steps"][-1])
    fig.suptitle(f"Critic weights at step {step} (seed {min(cfg['seeds'])})", fontsize=9)
    return _save(fig, path)


def _plot_depth(rows: pd.DataFrame, path: Path) -> bool:
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for (label, dataset), group in rows.groupby(["variant", "dataset"], sort=False):
        cols = [c for c in _layer_columns(group) if group[c].notna().any()]
        norms = group[cols].mean()
        ax.plot(range(1, len(cols) + 1), norms.values, marker="o", label=f"{label} · {dataset}")
    ax.set_yscale("log")
    ax.set_xlabel("critic hidden layer (input side first)")
    ax.set_ylabel("‖∂ critic loss / ∂ activations‖ (mean over seeds)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _plot_curves(cfg: dict, df: pd.DataFrame, path: Path) -> bool:
    ok = df[df["status"] == "ok"]
    wanted = [*metric_columns(cfg["metrics"], ok.columns), *DIAGNOSTICS]
    cols = [c for c in wanted if c in ok and ok[c].notna().any()]
    if not cols or ok.empty:
        return False
    fig, axes = _grid(len(cols), ncols=3)
    for ax, col in zip(axes, cols, strict=False):
        for label, group in ok.groupby("variant", sort=False):
            # Against real images seen, so variants with more critic steps per generator step
            # are drawn by the data they consumed.
            curve = group.groupby("step")[col].agg(["mean", "min", "max"])
            seen = group.groupby("step")["images_seen"].mean()
            ax.plot(seen, curve["mean"], label=label)
            ax.fill_between(seen, curve["min"], curve["max"], alpha=0.15)
        ax.set_title(col, fontsize=8)
        ax.set_xlabel("real images seen", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{df['dataset'].iloc[0]}: mean over seeds, band = min–max", fontsize=9)
    return _save(fig, path)


def _plot_samples(df: pd.DataFrame, run_dir: Path, dataset: str, path: Path) -> bool:
    seed = int(df["seed"].min())
    panels = []
    for label in df["variant"].unique():
        f = run_dir / "cells" / f"{label}__{dataset}__s{seed}" / "samples.npz"
        if f.is_file():
            panels.append((label, np.load(f)))
    if not panels:
        return False
    fig, axes = _grid(len(panels), ncols=4, size=2.6)
    if panels[0][1]["fake"].ndim == 5:  # piano rolls [N, tracks, bars, steps, pitches]
        from bench.music_io import roll_image

        for ax, (label, s) in zip(axes, panels, strict=False):
            ax.imshow(roll_image(s["fake"][:4], max_phrases=4), aspect="auto")
            ax.set_title(label, fontsize=8)
            ax.axis("off")
        fig.suptitle(f"{dataset}: final phrases, seed {seed} (S red, A green, T blue, B orange)",
                     fontsize=9)  # fmt: skip
        return _save(fig, path)
    if panels[0][1]["fake"].ndim == 4:  # images [N, C, H, W] as uint8
        for ax, (label, s) in zip(axes, panels, strict=False):
            ax.imshow(image_grid(s["fake"][:64]), cmap="gray", vmin=0, vmax=255)
            ax.set_title(label, fontsize=8)
            ax.axis("off")
        fig.suptitle(f"{dataset}: final samples, seed {seed}", fontsize=9)
        return _save(fig, path)
    for ax, (label, s) in zip(axes, panels, strict=False):
        real, fake = s["real"][:1000], s["fake"][:1000]
        ax.scatter(real[:, 0], real[:, 1], s=1, c="0.7", label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=1, c="C3", label="generated")
        lim = 1.3 * float(np.abs(real).max())
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=5)
    fig.suptitle(f"{dataset}: final samples, seed {seed} (grey real, red generated)", fontsize=9)
    return _save(fig, path)


def image_grid(images: np.ndarray, ncols: int = 8, pad: int = 1) -> np.ndarray:
    """uint8 images [N, C, H, W] tiled into one [rows·H, cols·W(, C)] picture with 1-px gaps."""
    n, c, h, w = images.shape
    rows = math.ceil(n / ncols)
    grid = np.full((rows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[top : top + h, left : left + w] = img.transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def save_png(path: Path, picture: np.ndarray) -> None:
    """Write an image array as a PNG, atomically, scaled up 3× so small digits stay visible."""
    big = np.kron(picture, np.ones((3, 3) + (1,) * (picture.ndim - 2), dtype=np.uint8))
    buf = io.BytesIO()
    plt.imsave(buf, big, cmap="gray" if big.ndim == 2 else None, vmin=0, vmax=255, format="png")
    atomic_write_bytes(path, buf.getvalue())


def _evaluation_line(cfg: dict[str, Any]) -> str:
    """How each evaluation was made, in the words of the suite's task."""
    every, n = cfg["eval"]["every"], cfg["eval"]["num_samples"]
    if cfg.get("task", "generation") == "paired_translation":
        return (
            f"- Evaluation: every {every} steps, the same (per seed) {n} held-out sources "
            "translated and compared with their targets (at most the held-out split's size)."
        )
    if cfg.get("task") == "super_resolution":
        return (
            f"- Evaluation: every {every} steps, the same (per seed) {n} held-out LR images "
            "upscaled and compared with their HR originals (at most the held-out split's size); "
            "psnr_y/ssim_y on the Y channel with `scale` border pixels cropped."
        )
    if cfg.get("task") == "anomaly_detection":
        return (
            f"- Evaluation: every {every} steps, the same {n} held-out images for every cell (every "
            "held-out image of the normal class(es) and a fixed shuffle of the anomalies, at least "
            "half of them normal; never a training image), each scored by the model, anomalies as "
            "the positive class."
        )
    if cfg.get("task") == "unpaired_translation":
        return (
            f"- Evaluation: every {every} steps, the same (per seed) {n} held-out images of each "
            "domain translated to the other and back (at most the held-out split's size)."
        )
    line = f"- Evaluation: every {every} steps on {n} generated vs real samples from fixed per-seed latents."
    likelihood = [m for m in cfg["metrics"] if isinstance(METRICS.get(m), ModelMetric)]
    if likelihood:
        line += (f" Likelihood ({', '.join(likelihood)}) of the same {cfg['eval']['likelihood_samples']} "
                 "held-out images for every cell: exact for the autoregressive models, the "
                 f"importance-weighted bound with k = {cfg['eval']['iwae_k']} for a VAE (an upper bound on "
                 "its NLL); empty for GANs, which define no likelihood.")  # fmt: skip
    paths = [m for m in cfg["metrics"] if m in ("ppl_z", "ppl_w")]
    if paths:
        e = cfg["eval"]
        t = "t ~ U(0, 1)" if e["ppl_sampling"] == "full" else "t = 0"
        line += (f" Path lengths ({', '.join(paths)}) over the same {e['ppl_samples']} latent "
                 f"pairs per seed at every evaluation, ε = {e['ppl_epsilon']:g}, {t} (sampling "
                 f"\"{e['ppl_sampling']}\"), 1st–99th percentiles kept, distances in the domain "
                 "classifier's layers (not the paper's LPIPS/VGG16: comparable within this "
                 "project only).")  # fmt: skip
    return line
