"""
Cost of the alignment term
==========================

Measures what the alignment term of :class:`skdivae.DiVAE` adds to training.
On 60 000 x 50 synthetic data (the paper's synthetic size: a 2-D mixture of
eight Gaussians embedded in 50 dimensions by a random rotation, plus small
isotropic noise) the same network is trained for the same number of epochs
with ``aligner="direct"``, with ``aligner="flow"`` and with ``aligner=None``
(the plain VAE).
Early stopping is switched off (``tol=0``, ``n_iter_no_change=10**6``), so
both fits run exactly ``max_iter`` epochs.

Training time is the sum of the per-epoch ``history_[i]["time"]``, which
covers the optimisation only. The density estimate, which only the aligned
model needs, is timed on its own:
``KNNLogDensity(method="pak", n_components=2, random_state=0).fit`` on the data
standardised per column, as DiVAE does internally. The wall time of the whole
``fit`` is reported too. Each training measurement is repeated (default 3
times, the two aligners alternating in ABBA order within one process, after a
small warm-up fit) and the median is used. Targets: training with the direct
aligner costs at most 1.15x the plain VAE's, with the flow aligner 1.6x. The same comparison is made with the
Gaussian-mixture prior (``prior="gmm"``).

Torch runs with one intra-op thread by default (``--threads``): the network
is small (two hidden layers of 64 units, mini-batches of 128), so extra
threads add synchronisation rather than speed, and on a busy machine they
make the timings erratic. ``--threads 0`` keeps torch's own setting.

The script prints its tables and writes them, with a templated reading of
the numbers, to ``docs/results/alignment_cost.md`` (see ``--out``). Run
``python benchmarks/bench_alignment_cost.py`` for the full benchmark or add
``--fast`` (3 000 x 50, 2 epochs) for a quick smoke run.
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning

from _report import package_version
from skdivae import DiVAE, KNNLogDensity

SEED = 0
N_FEATURES = 50
N_MIXTURE = 8
TARGETS = {"direct": 1.15, "flow": 1.6}
ALIGNERS = (None, "direct", "flow")
DOC_NAME = "alignment_cost.md"


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def make_data(n_samples, n_features=N_FEATURES, seed=SEED):
    """Eight 2-D Gaussians on a circle, rotated into ``n_features`` dimensions, plus noise."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(N_MIXTURE) / N_MIXTURE
    means = 4.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    scales = rng.uniform(0.3, 0.8, size=N_MIXTURE)
    comp = rng.integers(N_MIXTURE, size=n_samples)
    Z = means[comp] + scales[comp, None] * rng.normal(size=(n_samples, 2))
    rotation, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
    return Z @ rotation[:, :2].T + 0.05 * rng.normal(size=(n_samples, n_features))


def standardise(X):
    """Per-column standardisation, with DiVAE's guard against constant columns."""
    center, std = X.mean(axis=0), X.std(axis=0)
    scale = np.where(std > 1e-12 * np.maximum(np.abs(center), 1.0), std, 1.0)
    return (X - center) / scale


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------


def make_estimator(aligner, prior, epochs):
    return DiVAE(
        n_components=2,
        aligner=aligner,
        prior=prior,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=10**6,
        random_state=SEED,
    )


def fit_quietly(est, X):
    """``est.fit(X)`` without the ConvergenceWarning that a fixed epoch count implies."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X)
        return time.perf_counter() - start


def time_density(X_std, repeats):
    times = []
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            start = time.perf_counter()
            KNNLogDensity(method="pak", n_components=2, random_state=SEED).fit(X_std)
            times.append(time.perf_counter() - start)
    return times


def warm_up(X, priors):
    """One tiny fit per configuration, so torch's start-up costs stay out of the timings."""
    for prior in priors:
        for aligner in ALIGNERS:
            fit_quietly(make_estimator(aligner, prior, 1), X[:512])


def time_training(X, priors, epochs, repeats):
    """Per (prior, aligner): training times, whole-fit wall times, epochs run.

    Within each round the two aligners alternate, in ABBA order across rounds,
    so slow drifts of the machine's load hit both alike.
    """
    runs = {
        (p, a): {"train": [], "wall": [], "n_iter": [], "steps": None}
        for p in priors
        for a in ALIGNERS
    }
    density_for_plain = None
    for rep in range(repeats):
        order = ALIGNERS if rep % 2 == 0 else ALIGNERS[::-1]
        for prior in priors:
            for aligner in order:
                est = make_estimator(aligner, prior, epochs)
                wall = fit_quietly(est, X)
                run = runs[(prior, aligner)]
                run["train"].append(sum(h["time"] for h in est.history_))
                run["wall"].append(wall)
                run["n_iter"].append(est.n_iter_)
                run["steps"] = est.n_iter_ * -(-X.shape[0] // est.batch_size_)
                if aligner is None:
                    density_for_plain = getattr(est, "density_", None) is not None
                print(
                    f"  round {rep + 1}: prior={prior:<6} aligner={str(aligner):<6} "
                    f"train {run['train'][-1]:7.2f} s  fit {wall:7.2f} s  epochs {est.n_iter_}",
                    flush=True,
                )
    rows = []
    for (prior, aligner), run in runs.items():
        if set(run["n_iter"]) != {epochs}:
            raise RuntimeError(
                f"expected {epochs} epochs, got {run['n_iter']} ({prior}, {aligner})"
            )
        train = statistics.median(run["train"])
        rows.append(
            {
                "prior": prior,
                "aligner": aligner,
                "train": train,
                "train_all": run["train"],
                "wall": statistics.median(run["wall"]),
                "wall_all": run["wall"],
                "n_iter": epochs,
                "step_ms": 1000 * train / run["steps"],
            }
        )
    return rows, density_for_plain


def ratios(rows, priors):
    """aligned / None for each prior and aligner: ratio of medians, per-round paired
    ratios, whole-fit ratio, against the aligner's target."""
    by_key = {(r["prior"], r["aligner"]): r for r in rows}
    out = []
    for prior in priors:
        for aligner, target in TARGETS.items():
            plain, aligned = by_key[(prior, None)], by_key[(prior, aligner)]
            ratio = aligned["train"] / plain["train"]
            out.append(
                {
                    "prior": prior,
                    "aligner": aligner,
                    "target": target,
                    "ratio": ratio,
                    "paired": [d / p for d, p in zip(aligned["train_all"], plain["train_all"])],
                    "wall_ratio": aligned["wall"] / plain["wall"],
                    "extra_ms": aligned["step_ms"] - plain["step_ms"],
                    "passed": ratio <= target,
                }
            )
    return out


# --------------------------------------------------------------------------
# Tables, text, report
# --------------------------------------------------------------------------


def _runs(values):
    return ", ".join(f"{v:.2f}" for v in values)


def training_table(rows):
    lines = [
        "| prior | aligner | training, median (s) | training, all runs (s) | per step (ms) "
        "| whole fit, median (s) | whole fit, all runs (s) | epochs |",
        "|---|---|---:|---|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['prior']} | {r['aligner']} | {r['train']:.2f} | {_runs(r['train_all'])} "
            f"| {r['step_ms']:.3f} | {r['wall']:.2f} | {_runs(r['wall_all'])} | {r['n_iter']} |"
        )
    return "\n".join(lines)


def ratio_table(rat):
    lines = [
        "| prior | aligner | training ratio aligned / None (medians) | per-round ratios "
        "| extra per step (ms) | whole-fit ratio | target | result |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rat:
        lines.append(
            f"| {r['prior']} | {r['aligner']} | {r['ratio']:.3f}x "
            f"| {', '.join(f'{p:.3f}' for p in r['paired'])} "
            f"| {r['extra_ms']:+.3f} | {r['wall_ratio']:.3f}x | <= {r['target']:g}x "
            f"| {'PASS' if r['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def density_table(times):
    return "\n".join(
        [
            "| what | median (s) | all runs (s) |",
            "|---|---:|---|",
            f"| `KNNLogDensity(method=\"pak\", n_components=2, random_state=0).fit(X_std)` "
            f"| {statistics.median(times):.2f} | {_runs(times)} |",
        ]
    )


def interpretation(rows, rat, density_times, density_for_plain, epochs):
    by_key = {(r["prior"], r["aligner"]): r for r in rows}
    density = statistics.median(density_times)
    sentences = []
    for r in rat:
        plain, aligned = by_key[(r["prior"], None)], by_key[(r["prior"], r["aligner"])]
        verdict = "meeting" if r["passed"] else "missing"
        spread = max(
            max(abs(t / run["train"] - 1) for t in run["train_all"]) for run in (plain, aligned)
        )
        sentences.append(
            f"With prior={r['prior']!r}, {epochs} epochs of training took "
            f"{aligned['train']:.2f} s with aligner={r['aligner']!r} and {plain['train']:.2f} s "
            f"with aligner=None, a ratio of {r['ratio']:.3f}x ({verdict} the {r['target']:g}x target; "
            f"{r['extra_ms']:+.3f} ms per mini-batch step); the per-round ratios ranged from "
            f"{min(r['paired']):.3f} to {max(r['paired']):.3f} and single runs deviated from "
            f"their median by up to {100 * spread:.0f}%."
        )
    direct_wall = by_key[(rat[0]["prior"], "direct")]["wall"]
    sentences.append(
        f"The density estimate alone took {density:.2f} s, "
        f"{100 * density / direct_wall:.0f}% of the whole aligned fit with "
        f"prior={rat[0]['prior']!r} ({direct_wall:.2f} s)."
    )
    if density_for_plain:
        sentences.append(
            "DiVAE currently fits the density teacher for aligner=None too, although the plain "
            "VAE does not use it, so the whole-fit ratios include that cost on both sides."
        )
    elif density_for_plain is not None:
        sentences.append(
            "DiVAE skips the density teacher for aligner=None, so the whole-fit ratio also "
            "contains the density estimate."
        )
    return " ".join(sentences)


def machine_info():
    return [
        f"platform: {platform.platform()}",
        f"processor: {platform.processor() or platform.machine()}",
        f"CPU count: {os.cpu_count()}",
        f"torch {torch.__version__}: {torch.get_num_threads()} intra-op thread(s), "
        f"{torch.get_num_interop_threads()} inter-op thread(s)",
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, skdivae {package_version('skdivae')}",
    ]


def _load():
    try:
        return "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    except OSError:
        return "unavailable"


def write_report(
    path, *, command, fast, n, epochs, repeats, priors, rows, rat, density_times, text,
    load_start, load_end, elapsed,
):
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Cost of the alignment term",
        "",
        f"Generated by `{command}` on {date} (total run time {elapsed:.0f} s). "
        "Every number below comes from that run; rerun the command to refresh this page."
        + (" This was the reduced `--fast` run." if fast else ""),
        "",
        "Machine:",
        "",
        *[f"- {line}" for line in machine_info()],
        f"- load average (1, 5, 15 min) at start: {load_start}; at end: {load_end}",
        "",
        "## Set-up",
        "",
        f"Data: {n} x {N_FEATURES}, an equal-weight mixture of {N_MIXTURE} 2-D Gaussians "
        "(means on a circle of radius 4, standard deviations drawn in [0.3, 0.8]) embedded "
        f"in {N_FEATURES} dimensions by a random rotation, plus N(0, 0.05^2) noise "
        f"(`np.random.default_rng({SEED})`).",
        "",
        f"Model: `DiVAE(n_components=2, prior=..., aligner=None | \"direct\" | \"flow\", max_iter={epochs}, "
        f"tol=0.0, n_iter_no_change=10**6, random_state={SEED})`, other parameters at their "
        "defaults (hidden layers (64, 64), mini-batches of 128, Adam). Early stopping is "
        f"off, so every fit runs exactly {epochs} epochs. *Training* is "
        "`sum(h[\"time\"] for h in est.history_)` (the optimisation only); *whole fit* is the "
        "wall time of `fit`, which adds standardisation, the density estimate and the "
        "final scoring of the training data. A warm-up fit on 512 rows precedes the "
        f"measurements; each configuration is fitted {repeats} times in one process, the "
        "aligners alternating in forward and reverse order, and the median is reported. The "
        "flow aligner runs with its defaults (`FlowAligner()`: 5 coupling layers of 16 hidden "
        "units, one flow step per 4 mini-batches). Priors: "
        + ", ".join(f"`{p}`" for p in priors)
        + (" (`gmm` in this 2-D latent space: 40 components, `GaussianMixturePrior()`'s "
           "`n_components=\"auto\"`)" if "gmm" in priors else "")
        + f". Torch ran with {torch.get_num_threads()} intra-op thread(s) (`--threads`): "
        "the network is small, so more threads add synchronisation rather than speed, and "
        "on a busy machine they make timings erratic.",
        "",
        "## Density estimate (excluded from the target)",
        "",
        density_table(density_times),
        "",
        "## Training",
        "",
        training_table(rows),
        "",
        "## Ratios (targets: direct <= "
        + ", flow <= ".join(f"{t:g}x" for t in TARGETS.values())
        + ")",
        "",
        ratio_table(rat),
        "",
        "## Interpretation",
        "",
        text,
        "",
        "Timings on a shared machine are noisy; the per-round ratios and the load average "
        "above show how much. The targets apply to the training ratios with the default "
        "prior (the normal rows).",
        "",
    ]
    Path(path).write_text("\n".join(parts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--fast", action="store_true", help="3 000 x 50 and 2 epochs, a quick smoke run"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs per fit (default: 5, or 2 with --fast)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="fits per configuration (default: 3)"
    )
    parser.add_argument(
        "--priors",
        default="normal,gmm",
        help="comma-separated priors to compare (default: normal,gmm)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads; 0 keeps torch's own choice (default: 1)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"),
        help="output folder (default: ./results, untracked; pass --out docs/results to update the shipped pages)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    load_start = _load()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    n = 3_000 if args.fast else 60_000
    epochs = args.epochs if args.epochs is not None else (2 if args.fast else 5)
    priors = [p.strip() for p in args.priors.split(",") if p.strip()]
    argv_used = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python benchmarks/bench_alignment_cost.py", *argv_used])

    print("\n".join(machine_info()))
    X = make_data(n)
    X_std = standardise(X)
    warm_up(X, priors)

    print(f"\nDensity estimate ({n} x {N_FEATURES})")
    density_times = time_density(X_std, args.repeats)
    print(density_table(density_times))

    print(f"\nTraining ({n} x {N_FEATURES}, {epochs} epochs, {args.repeats} rounds)")
    rows, density_for_plain = time_training(X, priors, epochs, args.repeats)
    print()
    print(training_table(rows))
    rat = ratios(rows, priors)
    print()
    print(ratio_table(rat))
    for r in rat:
        print(
            f"prior={r['prior']}: {r['aligner']} / None = {r['ratio']:.3f}x "
            f"(target <= {r['target']:g}x): "
            f"{'PASS' if r['passed'] else 'FAIL'}"
        )
    text = interpretation(rows, rat, density_times, density_for_plain, epochs)
    print("\n" + text)

    args.out.mkdir(parents=True, exist_ok=True)
    doc = args.out / DOC_NAME
    elapsed = time.perf_counter() - start
    write_report(
        doc,
        command=command,
        fast=args.fast,
        n=n,
        epochs=epochs,
        repeats=args.repeats,
        priors=priors,
        rows=rows,
        rat=rat,
        density_times=density_times,
        text=text,
        load_start=load_start,
        load_end=_load(),
        elapsed=elapsed,
    )
    print(f"\nWrote {doc}")
    print(f"Total time {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
