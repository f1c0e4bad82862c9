"""Tabular anomaly-detection benchmark: DiVAE against the detectors users already run
===================================================================================

Runs every ADBench ``.npz`` file in ``--data-dir`` (arrays ``X`` and ``y``,
1 = anomaly) through the protocol of ``benchmarks/_adbench.py``: at most
``--max-rows`` rows, a stratified 70/30 split per seed, a ``StandardScaler``
fitted on the training part, an unsupervised fit on the training rows
(anomalies included, labels unused), and ROC AUC and average precision on
the test part, with fit and score times.

Detectors: DiVAE with its defaults, DiVAE with ``aligner=None`` (the same VAE
without alignment, weight 0), DiVAE along the alignment-weight grid, with the
paper's direct aligner and with the flow aligner; DiVAE's density teacher on
its own; IsolationForest, LocalOutlierFactor(novelty=True), GaussianMixture,
and PyOD's KNN, ECOD and VAE, each with its library defaults (see
``benchmarks/_detectors.py``). A
detector that fails on a data set is reported and the run goes on.

Writes ``adbench.md`` (per-data-set table, mean ROC AUC and average
precision, average rank, times, DiVAE against ``aligner=None``),
``adbench.png`` and ``adbench_results.csv`` (one row per fit) into ``--out``.

    python benchmarks/bench_adbench.py --data-dir ../shared/data/adbench

``--fast`` runs two small synthetic data sets instead, for the tests.
"""

import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from _adbench import (
    auc_table,
    average_ranks,
    evaluate,
    list_datasets,
    load_dataset,
    synthetic_dataset,
)
from _detectors import all_detectors
from _report import package_version, provenance

FOCUS, ABLATION = "DiVAE", "DiVAE aligner=None"


def run_task(detectors, name, data, seed):
    make, normality = detectors[name]
    record = evaluate(make, normality, data, seed)
    record["detector"] = name
    return record


def run_benchmark(datasets, detectors, seeds, n_jobs):
    """One record per (detector, data set, seed); biggest data sets are started first."""
    tasks = [(det, data, seed) for data in datasets for det in detectors for seed in seeds]
    tasks.sort(key=lambda t: -t[1]["X"].size)
    records = Parallel(n_jobs=n_jobs)(
        delayed(run_task)(detectors, det, data, seed) for det, data, seed in tasks
    )
    order = {d["name"]: i for i, d in enumerate(datasets)}
    names = list(detectors)
    records.sort(key=lambda r: (order[r["dataset"]], names.index(r["detector"]), r["seed"]))
    for r in records:
        if "error" in r:
            print(f"  FAILED {r['detector']} on {r['dataset']} seed {r['seed']}: {r['error']}")
    return records


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def summary(records, detectors, dataset_names):
    auc = auc_table(records, detectors, dataset_names, "auc")
    ap = auc_table(records, detectors, dataset_names, "ap")
    times = {
        det: (
            sum(r.get("fit_time", 0.0) for r in records if r["detector"] == det),
            sum(r.get("score_time", 0.0) for r in records if r["detector"] == det),
        )
        for det in detectors
    }
    failures = [r for r in records if "error" in r]
    with warnings.catch_warnings():  # a detector that failed everywhere: NaN, said above
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_auc, mean_ap = np.nanmean(auc, axis=0), np.nanmean(ap, axis=0)
    return {
        "auc": auc,
        "ap": ap,
        "mean_auc": mean_auc,
        "mean_ap": mean_ap,
        "rank": average_ranks(auc),
        "times": times,
        "failures": failures,
    }


def head_to_head(auc, detectors, a, b, tie=0.005):
    """Data sets where ``a`` beats, ties (within ``tie``) and loses to ``b`` on mean ROC AUC."""
    if a not in detectors or b not in detectors:
        return None
    diff = auc[:, detectors.index(a)] - auc[:, detectors.index(b)]
    diff = diff[~np.isnan(diff)]
    return int((diff > tie).sum()), int((np.abs(diff) <= tie).sum()), int((diff < -tie).sum())


def field(detectors):
    """DiVAE's defaults and every detector that is not a DiVAE variant."""
    return [d for d in detectors if d == FOCUS or not d.startswith("DiVAE")]


def weight_grid_lines(stats, detectors):
    """How far the alignment-weight grid moves the mean ROC AUC."""
    grid = [d for d in detectors if d == FOCUS or d == ABLATION or "alignment_weight=" in d]
    if len(grid) < 2:
        return []
    means = {d: stats["mean_auc"][detectors.index(d)] for d in grid}
    spread = max(means.values()) - min(means.values())
    cells = ", ".join(f"{d.replace('DiVAE ', '')} {m:.4f}" for d, m in means.items())
    word = "more" if spread > 0.02 else "NOT more"
    return [f"- Alignment weight: the grid ({cells}; `DiVAE` is weight 1, `aligner=None` "
            f"weight 0) moves the mean ROC AUC by {spread:.4f}: {word} than 0.02."]


def verdict(stats, detectors):
    """Sentences on the issue's target, computed from the numbers. DiVAE's defaults are
    compared with the field: the other detectors, not DiVAE's own variants."""
    if FOCUS not in detectors:
        return []
    keep = [detectors.index(d) for d in field(detectors)]
    sub_auc = stats["auc"][:, keep]
    detectors, stats = [detectors[i] for i in keep], {
        "mean_auc": stats["mean_auc"][keep], "rank": average_ranks(sub_auc), "auc": sub_auc,
    }
    j = detectors.index(FOCUS)
    mean_auc, rank = stats["mean_auc"], stats["rank"]
    others = [i for i in range(len(detectors)) if i != j]
    # A detector that failed everywhere has NaN for both: never the best.
    best_auc_other = max(others, key=lambda i: -np.inf if np.isnan(mean_auc[i]) else mean_auc[i])
    best_rank_other = min(others, key=lambda i: np.inf if np.isnan(rank[i]) else rank[i])
    lines = []
    if mean_auc[j] >= mean_auc[best_auc_other]:
        lines.append(
            f"- Mean ROC AUC: DiVAE {mean_auc[j]:.4f} is the best; the next is "
            f"{detectors[best_auc_other]} with {mean_auc[best_auc_other]:.4f} "
            f"(+{mean_auc[j] - mean_auc[best_auc_other]:.4f})."
        )
    else:
        lines.append(
            f"- Mean ROC AUC: DiVAE {mean_auc[j]:.4f} is NOT the best: "
            f"{detectors[best_auc_other]} has {mean_auc[best_auc_other]:.4f} "
            f"(DiVAE short by {mean_auc[best_auc_other] - mean_auc[j]:.4f})."
        )
    if rank[j] <= rank[best_rank_other]:
        lines.append(
            f"- Average rank among the field: DiVAE {rank[j]:.2f} is the best; the next is "
            f"{detectors[best_rank_other]} with {rank[best_rank_other]:.2f}."
        )
    else:
        lines.append(
            f"- Average rank among the field: DiVAE {rank[j]:.2f} is NOT the best: "
            f"{detectors[best_rank_other]} has {rank[best_rank_other]:.2f}."
        )
    return lines


def ablation_lines(stats, detectors):
    """DiVAE's defaults against the same model without alignment."""
    h2h = head_to_head(stats["auc"], detectors, FOCUS, ABLATION)
    if h2h is None:
        return []
    win, tie, loss = h2h
    delta = stats["mean_auc"][detectors.index(FOCUS)] - stats["mean_auc"][detectors.index(ABLATION)]
    return [
        f"- Alignment: DiVAE beats `aligner=None` on {win} data sets, ties on {tie} "
        f"(within 0.005 ROC AUC) and loses on {loss}; mean ROC AUC {delta:+.4f}."
    ]


def table_rows(matrix, detectors, dataset_names, digits=3):
    rows = ["| data set | " + " | ".join(detectors) + " |", "|---" * (len(detectors) + 1) + "|"]
    for name, row in zip(dataset_names, matrix):
        best = np.nanmax(row) if not np.isnan(row).all() else np.nan
        cells = []
        for v in row:
            if np.isnan(v):
                cells.append("failed")
            elif v >= best - 1e-12:
                cells.append(f"**{v:.{digits}f}**")
            else:
                cells.append(f"{v:.{digits}f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def write_markdown(path, stats, detectors, datasets, args, wall, figure):
    names = [d["name"] for d in datasets]
    n_fits = len(args.seeds) * len(names)
    order = np.argsort(stats["rank"])
    lines = [
        "# Tabular anomaly detection: DiVAE against the detectors users already run",
        "",
        provenance("bench_adbench.py", wall),
        "",
        *([f"Fits reused from an earlier run's CSV (`--resume`): {args.n_reused} of "
           f"{len(detectors) * n_fits}."] if getattr(args, "n_reused", 0) else []),
        "",
        f"Versions: skdivae {package_version('skdivae')}, scikit-learn "
        f"{package_version('scikit-learn')}, PyOD {package_version('pyod')}.",
        "",
        f"Protocol: {len(names)} data sets, seeds {', '.join(map(str, args.seeds))}; at most "
        f"{args.max_rows} rows per data set (a stratified subsample drawn once with seed 0; "
        "data sets that are larger are marked with their full size below), a stratified "
        "70/30 split per seed, a StandardScaler fitted on the training part, an "
        "unsupervised fit on the training rows (anomalies included, labels unused), ROC AUC "
        "and average precision on the test part. Every detector runs with its library "
        "defaults (GaussianMixture with `reg_covar=1e-4` so that it fits data sets with "
        "constant columns; LOF with `novelty=True`). Numbers are means over seeds.",
        "",
        f"![Mean ROC AUC and average rank per detector]({figure})",
        "",
        "## Summary",
        "",
        "| detector | mean ROC AUC | mean average precision | average rank | "
        "fit time (s, all fits) | score time (s, all fits) |",
        "|---|---|---|---|---|---|",
    ]
    for j in order:
        det = detectors[j]
        fit_s, score_s = stats["times"][det]
        lines.append(
            f"| {det} | {stats['mean_auc'][j]:.4f} | {stats['mean_ap'][j]:.4f} | "
            f"{stats['rank'][j]:.2f} | {fit_s:.1f} | {score_s:.2f} |"
        )
    lines += [
        "",
        f"Ranks are computed per data set on the seed-mean ROC AUC (1 = best) over the data "
        f"sets where every detector succeeded; times sum over all {n_fits} fits of a "
        "detector, each on one CPU thread.",
        "",
        "## The target",
        "",
        "Against the field (every detector above that is not a DiVAE variant; ranks "
        "recomputed among them):",
        "",
        *verdict(stats, detectors),
        *ablation_lines(stats, detectors),
        *weight_grid_lines(stats, detectors),
        "",
        "What was tried to reach the target, and why DiVAE's defaults are what they are: "
        "[alignment.md](../alignment.md) (the alignment, the teacher and the anomaly score) and "
        "[defaults.md](defaults.md) (one setting changed at a time, then the adopted changes "
        "together), both on selection seeds that are disjoint from the seeds above.",
        "",
        "## ROC AUC per data set",
        "",
        *table_rows(stats["auc"], detectors, [_label(d) for d in datasets]),
        "",
        "## Average precision per data set",
        "",
        *table_rows(stats["ap"], detectors, [_label(d) for d in datasets]),
        "",
        "## Failures",
        "",
    ]
    if stats["failures"]:
        lines += [
            f"- {r['detector']} on {r['dataset']} (seed {r['seed']}): {r['error']}"
            for r in stats["failures"]
        ]
    else:
        lines.append("None: every detector fitted and scored every data set and seed.")
    path.write_text("\n".join(lines) + "\n")


def _label(data):
    n, n_file = len(data["X"]), data["n_rows_file"]
    suffix = f" ({n} of {n_file} rows)" if n_file > n else ""
    return f"{data['name']}{suffix}"


def make_figure(path, stats, detectors):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(stats["rank"])[::-1]
    labels = [detectors[j] for j in order]
    colors = ["tab:red" if lab.startswith("DiVAE") else "tab:gray" for lab in labels]
    fig, (ax_rank, ax_auc) = plt.subplots(1, 2, figsize=(10, 0.45 * len(labels) + 1.5))
    ranks = stats["rank"][order]
    ax_rank.hlines(range(len(labels)), 1, ranks, color=colors, linewidth=2)
    ax_rank.scatter(ranks, range(len(labels)), color=colors, zorder=3)
    for k, r in enumerate(ranks):
        ax_rank.annotate(f"{r:.2f}", (r, k), xytext=(6, -4), textcoords="offset points")
    ax_rank.set_yticks(range(len(labels)), labels)
    ax_rank.set_xlim(1, len(labels))
    ax_rank.set_xlabel("average rank over data sets (1 = best)")
    auc = stats["auc"][:, order]
    for k in range(len(labels)):
        vals = auc[:, k][~np.isnan(auc[:, k])]
        ax_auc.scatter(vals, np.full(len(vals), k), s=12, color=colors[k], alpha=0.5)
        ax_auc.scatter(stats["mean_auc"][order][k], k, marker="|", s=300, color="black")
    ax_auc.set_yticks(range(len(labels)), [""] * len(labels))
    ax_auc.set_xlabel("ROC AUC per data set (dots) and mean (bar)")
    fig.suptitle("ADBench tabular data sets: DiVAE (red) against common detectors")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_csv(path, records):
    fields = ["detector", "dataset", "seed", "auc", "ap", "fit_time", "score_time", "error"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in records:
            writer.writerow({k: r.get(k, "") for k in fields})


def read_results(path, detectors, datasets, seeds):
    """The successful fits of an earlier ``adbench_results.csv`` that this run would repeat."""
    if path is None:
        return []
    names = {d["name"] for d in datasets}
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not r.get("error")]
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if v != ""}
        r["seed"] = int(r["seed"])
        if r["detector"] in detectors and r["dataset"] in names and r["seed"] in seeds:
            for key in ("auc", "ap", "fit_time", "score_time"):
                r[key] = float(r[key])
            out.append(r)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="folder of ADBench .npz files")
    parser.add_argument("--fast", action="store_true", help="two small synthetic data sets")
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="output folder (default: ./results, untracked; pass --out docs/results to update the shipped pages)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-rows", type=int, default=10000)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--detectors", nargs="+", help="a subset of the detector names")
    parser.add_argument("--resume", type=Path,
                        help="an earlier adbench_results.csv: its successful fits are reused")
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    if args.fast:
        args.seeds = args.seeds[:1]
        datasets = [synthetic_dataset(f"synthetic_{s}", s) for s in (0, 1)]
    elif args.data_dir is None:
        parser.error("--data-dir is required unless --fast is given")
    else:
        datasets = [
            load_dataset(args.data_dir, n, args.max_rows) for n in list_datasets(args.data_dir)
        ]
    detectors = all_detectors()
    if args.detectors:
        unknown = set(args.detectors) - set(detectors)
        if unknown:
            parser.error(f"unknown detectors {sorted(unknown)}; choose from {list(detectors)}")
        detectors = {k: v for k, v in detectors.items() if k in args.detectors}
    reused = read_results(args.resume, detectors, datasets, args.seeds)
    done = {(r["detector"], r["dataset"], r["seed"]) for r in reused}
    records = list(reused)
    for det in detectors:
        todo = [d for d in datasets if any((det, d["name"], s) not in done for s in args.seeds)]
        if todo:
            records += run_benchmark(todo, {det: detectors[det]}, args.seeds, args.n_jobs)
    order = {d["name"]: i for i, d in enumerate(datasets)}
    records.sort(key=lambda r: (order[r["dataset"]], list(detectors).index(r["detector"]), r["seed"]))
    args.n_reused = len(reused)
    names = list(detectors)
    stats = summary(records, names, [d["name"] for d in datasets])
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "adbench_results.csv", records)
    make_figure(args.out / "adbench.png", stats, names)
    wall = time.perf_counter() - tic
    write_markdown(args.out / "adbench.md", stats, names, datasets, args, wall, "adbench.png")
    for j in np.argsort(stats["rank"]):
        print(f"{names[j]:20s} mean AUC {stats['mean_auc'][j]:.4f}  rank {stats['rank'][j]:.2f}")
    print("\n".join(verdict(stats, names)))
    print(f"wrote {args.out / 'adbench.md'} in {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
