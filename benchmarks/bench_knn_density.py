"""
Speed and accuracy of KNNLogDensity
===================================

Benchmarks :class:`skdivae.KNNLogDensity` in two ways.

*Speed*: on standard-normal data projected to two PCA components, the fit of
``KNNLogDensity(50, method="knn" | "pak", n_components=2)`` is timed against
the bare work it cannot avoid, ``PCA(n_components=2).fit_transform(X)``
followed by ``NearestNeighbors(n_neighbors=50).fit(Z).kneighbors()``.
Targets: kNN at most 1.5x and PAk at most 3x that baseline.

*Accuracy*: on samples whose log-density is known exactly (standard normal
and a three-component Gaussian mixture of very different widths), the
leave-one-out estimates ``log_density_`` of the plain kNN and the PAk
estimators are compared with the truth and, when DADApy is installed, with
DADApy's ``compute_density_kNN`` and ``compute_density_PAk`` on the same
neighbourhoods.

The script prints its tables and writes them, with a short templated
interpretation, to ``docs/results/knn_density.md`` (see ``--out``). Run
``python benchmarks/bench_knn_density.py`` for the full benchmark or add
``--fast`` for a quick smoke run on small samples.
"""

import argparse
import datetime
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy.optimize import minimize_scalar
from scipy.special import gammaln
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from _report import package_version
from skdivae import KNNLogDensity
from skdivae.datasets._known_densities import gaussian_mixture, standard_normal

SPEED_SEED = 0
SPEED_K = 50
SPEED_COMPONENTS = 2
SPEED_REPEATS = 3
SPEED_TARGETS = {"knn": 1.5, "pak": 3.0}

KNN_K = 50
MIXTURE_SCALES = (0.1, 0.3, 1.0)
DIFF_TOL = 1e-3  # |difference| above which a point counts as disagreeing with DADApy
FIGURE_NAME = "knn_density_accuracy.png"
FIGURE_CASE = "mixture d=2"
DOC_NAME = "knn_density.md"


def accuracy_cases(n):
    """(label, d, seed, sampler) of every accuracy case."""
    cases = [(f"normal d={d}", d, 10 + d, standard_normal) for d in (2, 3, 4)]
    cases += [
        (
            f"mixture d={d}",
            d,
            20 + d,
            lambda n_, d_, rng: gaussian_mixture(n_, d_, rng, scales=MIXTURE_SCALES),
        )
        for d in (2, 3)
    ]
    return [(label, d, seed, sampler, n) for label, d, seed, sampler in cases]


# --------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------


def _baseline(X):
    Z = PCA(n_components=SPEED_COMPONENTS).fit_transform(X)
    NearestNeighbors(n_neighbors=SPEED_K).fit(Z).kneighbors()


def _fit(method):
    def run(X):
        KNNLogDensity(SPEED_K, method=method, n_components=SPEED_COMPONENTS).fit(X)

    return run


def run_speed(n, n_features):
    """Best-of-``SPEED_REPEATS`` times; the three contenders alternate in each round."""
    X = np.random.default_rng(SPEED_SEED).normal(size=(n, n_features))
    contenders = {"baseline": _baseline, "knn": _fit("knn"), "pak": _fit("pak")}
    times = {name: [] for name in contenders}
    for _ in range(SPEED_REPEATS):
        for name, func in contenders.items():
            start = time.perf_counter()
            func(X)
            times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    rows = []
    for name in contenders:
        ratio = best[name] / best["baseline"]
        target = SPEED_TARGETS.get(name)
        rows.append(
            {
                "name": name,
                "best": best[name],
                "all": times[name],
                "ratio": ratio,
                "target": target,
                "passed": None if target is None else ratio <= target,
            }
        )
    return {"n": n, "n_features": n_features, "rows": rows}


SPEED_LABELS = {
    "baseline": "baseline: `PCA(2).fit_transform` + `NearestNeighbors(50).kneighbors()`",
    "knn": '`KNNLogDensity(50, method="knn", n_components=2).fit`',
    "pak": '`KNNLogDensity(50, method="pak", n_components=2).fit`',
}


def speed_table(speed):
    lines = [
        "| what | best of 3 (s) | all runs (s) | ratio to baseline | target | result |",
        "|---|---:|---|---:|---:|---|",
    ]
    for row in speed["rows"]:
        runs = ", ".join(f"{t:.3f}" for t in row["all"])
        target = "" if row["target"] is None else f"<= {row['target']:g}x"
        result = "" if row["passed"] is None else ("pass" if row["passed"] else "FAIL")
        lines.append(
            f"| {SPEED_LABELS[row['name']]} | {row['best']:.3f} | {runs} | "
            f"{row['ratio']:.2f}x | {target} | {result} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------


def _metrics(est, err, truth, seconds):
    diff = est - truth
    return {
        "spearman": float(spearmanr(est, truth)[0]),
        "median_abs": float(np.median(np.abs(diff))),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "bias": float(np.mean(diff)),
        "sd_z": float(np.std(diff / err)),
        "seconds": seconds,
    }


def _skdivae(X, method, k):
    start = time.perf_counter()
    est = KNNLogDensity(k, method=method).fit(X)
    seconds = time.perf_counter() - start
    return est.log_density_, est.log_density_err_, est.kstar_, seconds


def _dadapy(dadapy, X, d, method, k):
    """DADApy on the same neighbourhood: maxk = k + 1 as its maxk counts the point itself."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = dadapy.Data(X, maxk=k + 1, n_jobs=1)
        data.compute_distances(maxk=k + 1)
        data.set_id(float(d))
        if method == "knn":
            log_den, log_den_err = data.compute_density_kNN(k=k)
        else:
            log_den, log_den_err = data.compute_density_PAk()
    seconds = time.perf_counter() - start
    dist = np.asarray(data.distances)[:, 1:]  # column 0 is the point itself
    return np.asarray(log_den), np.asarray(log_den_err), np.asarray(data.kstar), dist, seconds


def pak_profile_loglik(r, d, log_rho):
    """PAk log-likelihood at ``log_rho`` (unnormalised), maximised over the slope.

    ``r`` holds the k* neighbour distances of one point. The likelihood is
    ``k F + a k(k+1)/2 - sum_l v_l exp(F + a l)`` with ``v_l`` the volume of
    the l-th shell; it is concave, so of two values of ``F`` the one with the
    higher profile likelihood is closer to the maximum-likelihood estimate.
    """
    k = r.size
    log_ball = 0.5 * d * np.log(np.pi) - gammaln(0.5 * d + 1.0)
    shell = np.diff(np.exp(log_ball + d * np.log(r)), prepend=0.0)
    index = np.arange(1, k + 1)

    def neg(a):
        return -(
            k * log_rho
            + a * k * (k + 1) / 2
            - np.sum(shell * np.exp(np.minimum(log_rho + a * index, 700.0)))
        )

    bound = 20.0 / k
    res = minimize_scalar(neg, bounds=(-bound, bound), method="bounded", options={"xatol": 1e-12})
    return -res.fun


def run_accuracy(n, pak_k, dadapy):
    results = []
    for label, d, seed, sampler, n_samples in accuracy_cases(n):
        X, truth = sampler(n_samples, d, np.random.default_rng(seed))
        case = {"label": label, "d": d, "n": n_samples, "rows": [], "agreement": []}
        sk = {}
        for method, k in (("knn", KNN_K), ("pak", pak_k)):
            est, err, kstar, seconds = _skdivae(X, method, k)
            sk[method] = (est, kstar)
            case["rows"].append(
                {"impl": "skdivae", "method": method, "k": k, **_metrics(est, err, truth, seconds)}
            )
        if dadapy is not None:
            for method, k in (("knn", KNN_K), ("pak", pak_k)):
                est, err, kstar, dist, seconds = _dadapy(dadapy, X, d, method, k)
                case["rows"].append(
                    {
                        "impl": "DADApy",
                        "method": method,
                        "k": k,
                        **_metrics(est, err, truth, seconds),
                    }
                )
                sk_est, sk_kstar = sk[method]
                delta = est - sk_est
                offset = np.log(n_samples / (n_samples - 1))  # DADApy divides by N, not N - 1
                corrected = np.abs(delta + offset)
                differ = np.flatnonzero(corrected > DIFF_TOL)
                sk_higher = None
                if method == "pak":
                    # Which of the two estimates is nearer the likelihood maximum?
                    sk_higher = 0
                    for i in differ:
                        r = dist[i, : kstar[i]]
                        ll_sk = pak_profile_loglik(r, d, sk_est[i] + np.log(n_samples - 1))
                        ll_da = pak_profile_loglik(r, d, est[i] + np.log(n_samples))
                        sk_higher += int(ll_sk > ll_da)
                case["agreement"].append(
                    {
                        "method": method,
                        "kstar_equal": float(np.mean(kstar == sk_kstar)),
                        "max_abs": float(np.max(np.abs(delta))),
                        "offset": float(offset),
                        "max_abs_corrected": float(np.max(corrected)),
                        "n_differ": int(differ.size),
                        "sk_higher": sk_higher,
                    }
                )
        if label == FIGURE_CASE:
            case["figure"] = {"truth": truth, "knn": sk["knn"][0], "pak": sk["pak"][0]}
        results.append(case)
    return results



def accuracy_table(results):
    lines = [
        "| case | implementation | method | k | Spearman | median abs err | RMSE "
        "| mean bias | sd of (est-true)/err | fit (s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in results:
        for r in case["rows"]:
            k = f"{r['k']}" if r["method"] == "knn" else f"<= {r['k']}"
            lines.append(
                f"| {case['label']} | {r['impl']} | {r['method']} | {k} | {r['spearman']:.4f} "
                f"| {r['median_abs']:.3f} | {r['rmse']:.3f} | {r['bias']:+.3f} "
                f"| {r['sd_z']:.2f} | {r['seconds']:.2f} |"
            )
    return "\n".join(lines)


def agreement_table(results):
    lines = [
        "| case | method | k* equal to DADApy's | max abs diff of log-density "
        f"| log(N/(N-1)) | max abs diff, offset removed | points differing by > {DIFF_TOL:g} "
        "| of those, skdivae has the higher PAk likelihood |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in results:
        for a in case["agreement"]:
            higher = "" if a["sk_higher"] is None else f"{a['sk_higher']}"
            lines.append(
                f"| {case['label']} | {a['method']} | {100 * a['kstar_equal']:.2f}% "
                f"| {a['max_abs']:.2e} | {a['offset']:.2e} | {a['max_abs_corrected']:.2e} "
                f"| {a['n_differ']} | {higher} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Interpretation, figure, report
# --------------------------------------------------------------------------


def _rows(results, impl, method):
    return [r for c in results for r in c["rows"] if r["impl"] == impl and r["method"] == method]


def _calibration(lo, hi):
    if 0.8 <= lo and hi <= 1.2:
        return "so the reported standard errors roughly match the actual spread"
    if lo >= 0.8:
        return f"so the reported standard errors are too small, by a factor of up to {hi:.2f}"
    if hi <= 1.2:
        return f"so the reported standard errors are too large, by a factor of up to {1 / lo:.2f}"
    return "so the reported standard errors are too small in some cases and too large in others"


def _span(values, fmt):
    lo, hi = min(values), max(values)
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}} to {hi:{fmt}}"


def interpretation(speed, results, pak_k, has_dadapy):
    sentences = []
    ratio = {r["name"]: r for r in speed["rows"]}
    verdict = {True: "meeting", False: "missing"}
    sentences.append(
        f"The kNN fit took {ratio['knn']['ratio']:.2f}x the bare PCA + neighbour-search time "
        f"({verdict[ratio['knn']['passed']]} the {SPEED_TARGETS['knn']:g}x target) and the PAk "
        f"fit {ratio['pak']['ratio']:.2f}x ({verdict[ratio['pak']['passed']]} the "
        f"{SPEED_TARGETS['pak']:g}x target)."
    )

    knn, pak = _rows(results, "skdivae", "knn"), _rows(results, "skdivae", "pak")
    n_cases = len(results)
    rmse_pak = sum(b["rmse"] < a["rmse"] for a, b in zip(knn, pak))
    bias_pak = sum(abs(b["bias"]) < abs(a["bias"]) for a, b in zip(knn, pak))
    rho_knn = sum(a["spearman"] > b["spearman"] for a, b in zip(knn, pak))
    sentences.append(
        f"Of the {n_cases} cases, PAk (k* <= {pak_k}) had the lower RMSE in {rmse_pak} and the "
        f"smaller absolute mean bias in {bias_pak} (|bias| "
        f"{_span([abs(r['bias']) for r in pak], '.3f')} nats against "
        f"{_span([abs(r['bias']) for r in knn], '.3f')} for kNN with k = {KNN_K}), while kNN "
        f"had the higher Spearman correlation with the truth in {rho_knn}."
    )

    sd_knn, sd_pak = [r["sd_z"] for r in knn], [r["sd_z"] for r in pak]
    why = (
        " (its 1/sqrt(k) counts only the sampling noise of the neighbour count, not the bias "
        "from the density varying across the k-ball)"
        if max(sd_knn) > 1.2
        else ""
    )
    sentences.append(
        f"The standard deviation of (est - true) / err was {_span(sd_knn, '.2f')} for kNN, "
        f"{_calibration(min(sd_knn), max(sd_knn))}{why}, and {_span(sd_pak, '.2f')} for PAk, "
        f"{_calibration(min(sd_pak), max(sd_pak))}."
    )

    if has_dadapy:
        agree = [a for c in results for a in c["agreement"]]
        pak_agree = [a for a in agree if a["method"] == "pak"]
        knn_agree = [a for a in agree if a["method"] == "knn"]
        kstar = _span([100 * a["kstar_equal"] for a in pak_agree], ".2f")
        sentences.append(
            f"Against DADApy on the same neighbourhoods, skdivae's PAk k* equalled DADApy's at "
            f"{kstar}% of the points, and once the constant log(N/(N-1)) offset is removed the "
            f"log-densities differ by at most "
            f"{max(a['max_abs_corrected'] for a in knn_agree):.1e} for kNN and "
            f"{max(a['max_abs_corrected'] for a in pak_agree):.1e} for PAk."
        )
        n_differ = sum(a["n_differ"] for a in pak_agree)
        if n_differ:
            n_total = sum(c["n"] for c in results)
            sk_higher = sum(a["sk_higher"] for a in pak_agree)
            text = (
                f"The PAk values differ by more than {DIFF_TOL:g} at {n_differ} of {n_total} "
                f"points; at {sk_higher} of them skdivae's value has the higher PAk likelihood "
                "(profiled over the slope), i.e. DADApy's optimiser stopped short of the maximum"
            )
            if sk_higher < n_differ:
                text += f", and at {n_differ - sk_higher} DADApy's value has the higher likelihood"
            sentences.append(text + ".")
    else:
        sentences.append("No comparison with DADApy was made (see above).")
    return " ".join(sentences)


def make_figure(results, out_dir):
    case = next((c for c in results if "figure" in c), None)
    if case is None:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig_data = case["figure"]
    truth = fig_data["truth"]
    rng = np.random.default_rng(0)
    keep = rng.choice(truth.size, size=min(truth.size, 5000), replace=False)
    values = np.concatenate([truth, fig_data["knn"], fig_data["pak"]])
    lo, hi = values.min(), values.max()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), sharex=True, sharey=True)
    for ax, method in zip(axes, ("knn", "pak")):
        ax.scatter(truth[keep], fig_data[method][keep], s=2, alpha=0.3, rasterized=True)
        ax.plot([lo, hi], [lo, hi], color="k", lw=1)
        ax.set_title(f"skdivae {method}, {case['label']}, N={case['n']}", fontsize=10)
        ax.set_xlabel("true log-density")
    axes[0].set_ylabel("estimated log-density (leave-one-out)")
    fig.tight_layout()
    path = Path(out_dir) / FIGURE_NAME
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def machine_info():
    return [
        f"platform: {platform.platform()}",
        f"processor: {platform.processor() or platform.machine()}",
        f"CPU count: {os.cpu_count()}",
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, skdivae {package_version('skdivae')}, "
        f"dadapy {package_version('dadapy')}",
    ]


def write_report(path, *, args, sizes, speed, results, text, figure, dadapy_note, elapsed):
    command = "python benchmarks/bench_knn_density.py" + (" --fast" if args.fast else "")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# KNNLogDensity: speed and accuracy",
        "",
        f"Generated by `{command}` on {date} (total run time {elapsed:.0f} s). "
        "Every number below comes from that run; rerun the command to refresh this page."
        + (" This was the reduced `--fast` run." if args.fast else ""),
        "",
        "Machine:",
        "",
        *[f"- {line}" for line in machine_info()],
        "",
        "## Speed",
        "",
        f"Standard-normal data of {speed['n']} x {speed['n_features']} (seed {SPEED_SEED}), "
        f"projected to {SPEED_COMPONENTS} PCA components, k = {SPEED_K}. Best of "
        f"{SPEED_REPEATS} repeats with `time.perf_counter`, the three contenders alternating "
        "in each round in one process. Targets: kNN <= "
        f"{SPEED_TARGETS['knn']:g}x and PAk <= {SPEED_TARGETS['pak']:g}x the baseline.",
        "",
        speed_table(speed),
        "",
        "## Accuracy",
        "",
        f"Leave-one-out estimates on samples with a known density: N(0, I_d) for d = 2, 3, 4 "
        f"and an equal-weight mixture of three isotropic Gaussians with scales "
        f"{MIXTURE_SCALES} and means drawn uniformly in [-3, 3]^d for d = 2, 3; "
        f"N = {sizes['acc_n']}, one fixed seed per case. Estimates are in the input space "
        "(no PCA) with the true dimension d. kNN uses k = "
        f"{KNN_K}; PAk lets k* grow up to {sizes['pak_k']}. `err` is the standard error each "
        "method reports (`log_density_err_`, or DADApy's `log_den_err`); a standard deviation "
        "of (est - true) / err near 1 means the error bars are honest. Fit times are "
        "single runs; DADApy's include its neighbour search (`n_jobs=1`, like skdivae's).",
        "",
        dadapy_note,
        "",
        accuracy_table(results),
        "",
    ]
    if any(c["agreement"] for c in results):
        parts += [
            "Agreement with DADApy (`Data(X, maxk=k + 1)`, since DADApy's `maxk` counts the "
            "point itself; DADApy normalises by N where skdivae's leave-one-out estimate uses "
            "N - 1, a constant offset of log(N/(N-1))):",
            "",
            agreement_table(results),
            "",
        ]
    if figure is not None:
        parts += [
            f"![estimated vs true log-density]({figure.name})",
            "",
            f"Estimated against true log-density for {FIGURE_CASE} (5000 random points shown).",
            "",
        ]
    parts += ["## Interpretation", "", text, ""]
    Path(path).write_text("\n".join(parts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small sizes, a quick smoke run")
    parser.add_argument(
        "--out", type=Path, default=Path("results"),
        help="output folder (default: ./results, untracked; pass --out docs/results to update the shipped pages)"
    )
    parser.add_argument(
        "--no-dadapy", action="store_true", help="skip the DADApy comparison even if installed"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()

    if args.fast:
        sizes = {"speed_n": 10_000, "acc_n": 3_000, "pak_k": 100}
    else:
        sizes = {"speed_n": 100_000, "acc_n": 20_000, "pak_k": 200}

    dadapy = None
    if args.no_dadapy:
        dadapy_note = "DADApy rows skipped (`--no-dadapy`)."
    else:
        try:
            import dadapy
        except ImportError as exc:
            dadapy_note = f"DADApy rows skipped: `import dadapy` failed ({exc})."
        else:
            dadapy_note = f"DADApy {package_version('dadapy')} rows included."
    print(dadapy_note)

    print(f"\nSpeed ({sizes['speed_n']} x 20, {SPEED_COMPONENTS} components, k={SPEED_K})")
    speed = run_speed(sizes["speed_n"], 20)
    print(speed_table(speed))

    print(f"\nAccuracy (N={sizes['acc_n']}, kNN k={KNN_K}, PAk k* <= {sizes['pak_k']})")
    results = run_accuracy(sizes["acc_n"], sizes["pak_k"], dadapy)
    print(accuracy_table(results))
    if dadapy is not None:
        print("\nAgreement with DADApy")
        print(agreement_table(results))

    text = interpretation(speed, results, sizes["pak_k"], dadapy is not None)
    print("\n" + text)

    args.out.mkdir(parents=True, exist_ok=True)
    figure = make_figure(results, args.out)
    elapsed = time.perf_counter() - start
    doc = args.out / DOC_NAME
    write_report(
        doc,
        args=args,
        sizes=sizes,
        speed=speed,
        results=results,
        text=text,
        figure=figure,
        dadapy_note=dadapy_note,
        elapsed=elapsed,
    )
    print(f"\nWrote {doc}" + (f" and {figure}" if figure is not None else ""))
    print(f"Total time {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
