"""Which prior ``DiVAE(n_components=2)`` should get by default (issue 27)
=====================================================================

In a latent space of one or two dimensions, ``log N(z; 0, I)`` has a single
peak: an encoder that keeps k separated clusters apart (the decoder needs
them apart) cannot give each cluster's centre a high log-prior, so the aligned
log-prior could not follow a density with several modes with any aligner
tried when this study ran (``docs/results/aligner_regime.md``: Pearson
0.16-0.63 with the N(0, I) prior for every formulation, 0.97-0.99 with a
mixture prior). ``docs/results/calibration_2d.md`` later found that a much
stronger pull gets N(0, I) to 0.95: the limit was the aligner's strength. The default prior is
``"normal"``, so a user who asks for a 2-D latent space, the paper's
illustration, gets the one prior that cannot carry rho there.

This study fits the eight rotated-mixture setups of the regime studies (k from
4 to 12, D from 20 to 60, ``standardize`` on and off, 40 and 100 epochs) with
``DiVAE(n_components=2, prior=P, aligner=A)`` for ``P`` in ``"normal"``,
``"gmm"`` (its default number of components) and ``A`` in the default aligner,
``None`` and ``"direct_paper"``. Pearson: the aligned log-prior at the
posterior mean against the true 2-D log-density of 5000 validation rows.

Rule, written before the run (``RULE``). The reporting seeds choose nothing.
Every fit is one JSON line in ``--cache``, so a cut-off run resumes.

    python benchmarks/select_prior_2d.py --cache /tmp/prior2d.jsonl --out docs/results
"""

import argparse
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from _adbench import list_datasets, load_dataset, synthetic_dataset
from _mixtures_2d import DIRECT_2D_BEFORE_CALIBRATION, detection_fit, run_fits
from skdivae import DirectAligner
from _report import append_jsonl, provenance, read_jsonl, write_page
from select_mixture_components_2d import N_TRAIN, N_VAL, SETUPS, setup_name

PRIORS = ["normal", "gmm"]
DEFAULT = "DirectAligner() (default)"
#: The default aligner as it resolved when this study ran, pinned so that a rerun measures the
#: same fits (calibration_2d.md has since changed it with N(0, I) in 1-2-D).
ALIGNERS = {DEFAULT: dict(aligner=DirectAligner(**DIRECT_2D_BEFORE_CALIBRATION)),
            "aligner=None": dict(aligner=None),
            "direct_paper": dict(aligner="direct_paper")}
RHO = "rho (the teacher)"
SELECTION_SEEDS, REPORT_SEEDS = [21], [31, 32]
RULE = (
    "On the selection seed (21), with the default aligner, prior='gmm' (GaussianMixturePrior() "
    "with its default number of components) becomes what DiVAE() uses in a latent space of at "
    "most two dimensions (a new default prior='auto', which keeps 'normal' in more dimensions) "
    "only if its median Pearson over the eight setups beats prior='normal''s by more than 0.05 "
    "and it is below prior='normal''s by more than 0.01 in at most one setup. Otherwise "
    "'normal' stays the default everywhere. The reporting seeds (31, 32) then report both "
    "priors with the three aligners, and the issue's target with the adopted prior: the "
    "default aligner's median at least aligner=None's and direct_paper's, and within 0.05 of "
    "rho's."
)


def run_study(priors, aligners, seeds, cache, n_jobs, n_train, n_val, setups):
    records = read_jsonl(cache)
    done = {(r["setup"], r["prior"], r["aligner"], r["seed"]) for r in records
            if "error" not in r and "part" not in r}
    tasks = [
        ({"setup": setup_name(s), "prior": p, "aligner": a, "seed": seed},
         dict(k=s[0], D=s[1], seed=seed, n_train=n_train, n_val=n_val, standardize=s[2],
              max_iter=s[3], prior=p, **ALIGNERS[a]))
        for seed in seeds for p in priors for a in aligners for s in setups
        if (setup_name(s), p, a, seed) not in done
    ]
    return run_fits(records, tasks, cache, n_jobs)


def per_setup(records, seeds, setups):
    """``{(prior, aligner): {setup: mean Pearson over seeds}}``, with rho's under
    ``("any", RHO)``; only cells with every seed; and the mean fit time per prior."""
    cells, times = {}, {}
    for r in records:
        if r["seed"] in seeds and "pearson" in r:
            cells.setdefault((r["prior"], r["aligner"]), {}).setdefault(r["setup"], []).append(
                r["pearson"])
            cells.setdefault(("any", RHO), {}).setdefault(r["setup"], []).append(r["pearson_rho"])
            times.setdefault(r["prior"], []).append(r["time"])
    names = [setup_name(s) for s in setups]
    table = {key: {s: float(np.mean(v)) for s, v in by.items()}
             for key, by in cells.items()
             if all(s in by for s in names) and all(len(by[s]) >= len(seeds) for s in names)}
    return table, {p: float(np.mean(t)) for p, t in times.items()}


def median(cells):
    return float(np.median(list(cells.values())))


def adopt(table):
    """The rule: ``(adopted prior in 2-D, gmm's median, normal's median, setups where
    gmm is lower by more than 0.01)``."""
    gmm, normal = table.get(("gmm", DEFAULT)), table.get(("normal", DEFAULT))
    if gmm is None or normal is None:
        return "normal", float("nan"), float("nan"), 0
    losses = sum(gmm[s] < normal[s] - 0.01 for s in gmm)
    passes = median(gmm) > median(normal) + 0.05 and losses <= 1
    return ("gmm" if passes else "normal"), median(gmm), median(normal), losses


def seeds_table(table, times, setups, title):
    lines = [title, "", "| prior | aligner | median Pearson | "
             + " | ".join(map(setup_name, setups)) + " |", "|---|---|---|" + "---|" * len(setups)]
    order = sorted(table, key=lambda key: (key[0] != "any", key[0], key[1] != DEFAULT, key[1]))
    for p, a in order:
        cells = table[(p, a)]
        row = " | ".join(f"{cells[setup_name(s)]:.3f}" for s in setups)
        lines.append(f"| {p} | {a} | {median(cells):.3f} | {row} |")
    lines += ["", "Mean seconds per fit: " + ", ".join(
        f"prior='{p}': {t:.1f}" for p, t in sorted(times.items())) + ".", ""]
    return lines


def target_lines(table, prior):
    need = [(prior, DEFAULT), (prior, "aligner=None"), (prior, "direct_paper"), ("any", RHO)]
    if not all(n in table for n in need):
        return [f"- The reporting fits with prior='{prior}' are not all in the cache."]
    med = {a: median(table[(p, a)]) for p, a in need}
    diff = [table[(prior, DEFAULT)][s] - table[(prior, "aligner=None")][s]
            for s in table[(prior, DEFAULT)]]
    met = med[DEFAULT] >= max(med["aligner=None"], med["direct_paper"])
    gap = med[RHO] - med[DEFAULT]
    return [
        f"- prior='{prior}': default aligner median {med[DEFAULT]:.3f}, aligner=None "
        f"{med['aligner=None']:.3f}, direct_paper {med['direct_paper']:.3f}: "
        f"{'met' if met else 'not met'}; per setup against aligner=None (±0.01) "
        f"{sum(d > 0.01 for d in diff)} wins, {sum(d < -0.01 for d in diff)} losses. "
        f"Within 0.05 of rho's median ({med[RHO]:.3f}): "
        + ("met." if gap <= 0.05 else f"not met, short by {gap - 0.05:.3f}."),
    ]


#: Seeds of the check made after the adoption: detection with a 2-D latent space.
DETECTION_SEEDS = [10, 11]


def adbench_fit(data, prior, seed):
    """The detection check's fit: ``DiVAE(n_components=2, prior=prior)`` with the default
    aligner of the time on one ADBench set."""
    aligner = DirectAligner(**DIRECT_2D_BEFORE_CALIBRATION)
    return detection_fit(data, seed, {"prior": prior}, prior=prior, aligner=aligner)


def run_detection(datasets, seeds, cache, n_jobs):
    records = read_jsonl(cache)
    done = {(r["dataset"], r["prior"], r["seed"]) for r in records
            if r.get("part") == "adbench" and "error" not in r}
    tasks = [(d, p, s) for s in seeds for d in datasets for p in PRIORS
             if (d["name"], p, s) not in done]
    print(f"detection: {len(tasks)} fits to run", flush=True)
    out = cache.open("a") if cache else None
    for rec in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(adbench_fit)(d, p, s) for d, p, s in tasks):
        records.append(rec)
        append_jsonl(out, rec)
    return records


def detection_lines(records):
    """The after-adoption check: mean ROC AUC per prior and wins/ties/losses of 'gmm'."""
    cells = {}
    for r in records:
        if r.get("part") == "adbench" and "auc" in r and r["seed"] in DETECTION_SEEDS:
            cells.setdefault(r["prior"], {}).setdefault(r["dataset"], []).append(r["auc"])
    if set(cells) != set(PRIORS):
        return []
    sets = sorted(set(cells["gmm"]) & set(cells["normal"]))
    sets = [d for d in sets if all(len(cells[p][d]) == len(DETECTION_SEEDS) for p in PRIORS)]
    if not sets:
        return []
    mean = {p: {d: float(np.mean(cells[p][d])) for d in sets} for p in PRIORS}
    diff = np.array([mean["gmm"][d] - mean["normal"][d] for d in sets])
    return [
        "## After the adoption: detection with a 2-D latent space (ADBench)", "",
        "A check made after the rule had chosen, not part of it: `DiVAE(n_components=2, "
        "prior=P)` as an anomaly detector (anomaly_score='elbo', the benchmark's split and "
        f"scaling, {len(sets)} development sets, seeds "
        f"{', '.join(map(str, DETECTION_SEEDS))}). Mean ROC AUC: prior='normal' "
        f"{np.mean(list(mean['normal'].values())):.4f}, prior='gmm' "
        f"{np.mean(list(mean['gmm'].values())):.4f}; 'gmm' against 'normal' per data set "
        f"(±0.005): {(diff > 0.005).sum()} wins, {(np.abs(diff) <= 0.005).sum()} ties, "
        f"{(diff < -0.005).sum()} losses. The default latent size for detection is 8, where "
        "'auto' is N(0, I). Both fits here used the aligner of the time; with N(0, I) in 2-D "
        "today's stronger aligner ranks anomalies a little lower (0.8061, "
        "[calibration_2d.md](calibration_2d.md)), level with the mixture prior: for "
        "detection keep 8 dimensions.", "",
    ]


def report(records, setups, wall):
    sel, sel_times = per_setup(records, SELECTION_SEEDS, setups)
    adopted, med_gmm, med_normal, losses = adopt(sel)
    rep, rep_times = per_setup(records, REPORT_SEEDS, setups)
    lines = [
        "# Which prior DiVAE() gets in a latent space of one or two dimensions", "",
        provenance("select_prior_2d.py", wall), "",
        f"Fits: {len(records)} (those already in `--cache` reused, not rerun; run by `--seeds "
        "21`, then `--seeds 31 32`); fit time summed over them, one thread each: "
        f"{sum(r.get('time', 0.0) for r in records) / 60:.1f} min.", "",
        f"{N_TRAIN} training and {N_VAL} validation rows per fit of "
        "`DiVAE(n_components=2, prior=P, aligner=A)` (hidden layers (64, 64), the teacher on "
        "PCA-2; `\"gmm\"` is `GaussianMixturePrior()`, 40 components in two dimensions, "
        "[mixture_components_2d.md](mixture_components_2d.md)). Pearson: the aligned log-prior "
        "at the posterior mean against the true 2-D log-density of the validation rows; rho's "
        "own Pearson is the ceiling.", "",
        "`DirectAligner() (default)` is the default aligner when these fits ran. With "
        "prior='normal' in one or two dimensions it has since changed (the penalty scaled per "
        "feature, averaged and quadratic up to 10 standard errors, "
        "[calibration_2d.md](calibration_2d.md), which reads this page's fits as its "
        "baseline); with the mixture prior it has not.", "",
        f"Rule, written before the run: {RULE}", "",
    ]
    lines += seeds_table(sel, sel_times, setups, "## Selection seed (21)")
    lines += [f"Default aligner, median Pearson: prior='gmm' {med_gmm:.3f}, prior='normal' "
              f"{med_normal:.3f}; setups where 'gmm' is lower by more than 0.01: {losses}. "
              f"Adopted in a 1-2-D latent space: **prior='{adopted}'**"
              + (" (prior='auto')." if adopted == "gmm" else " ('normal' stays)."), ""]
    if rep:
        lines += seeds_table(rep, rep_times, setups, "## Reporting seeds (31, 32)")
        lines += target_lines(rep, adopted)
        other = "normal" if adopted == "gmm" else "gmm"
        lines += ["- For comparison:"] + ["  " + line for line in target_lines(rep, other)]
        lines += [""]
    lines += detection_lines(records)
    return "\n".join(lines) + "\n", adopted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=SELECTION_SEEDS)
    parser.add_argument("--priors", nargs="*", default=PRIORS,
                        help="priors to fit (none: only write the page from --cache)")
    parser.add_argument("--aligners", nargs="+", default=list(ALIGNERS), choices=list(ALIGNERS))
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--data-dir", default=None,
                        help="ADBench folder: also run the after-adoption detection check")
    parser.add_argument("--detection-seeds", type=int, nargs="*", default=DETECTION_SEEDS)
    parser.add_argument("--fast", action="store_true", help="tiny sizes, two setups (tests)")
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    n_train, n_val, setups = N_TRAIN, N_VAL, SETUPS
    if args.fast:
        n_train, n_val, setups = 300, 200, [(3, 6, True, 3), (3, 6, False, 3)]
        SELECTION_SEEDS[:] = REPORT_SEEDS[:] = args.seeds = args.seeds[:1]
    records = run_study(args.priors, args.aligners, args.seeds, args.cache, args.n_jobs,
                        n_train, n_val, setups)
    if args.fast:
        DETECTION_SEEDS[:] = args.detection_seeds = [10]
        records = run_detection([synthetic_dataset("synthetic_0", 0)], args.detection_seeds,
                                args.cache, args.n_jobs) + [r for r in records if "part" not in r]
    elif args.data_dir is not None:
        datasets = [load_dataset(args.data_dir, n, 10000) for n in list_datasets(args.data_dir)]
        records = run_detection(datasets, args.detection_seeds, args.cache, args.n_jobs)
    text, adopted = report(records, setups, time.perf_counter() - tic)
    write_page(args.out, "prior_2d.md", text)
    print(f"adopted in 1-2-D: prior='{adopted}'")


if __name__ == "__main__":
    main()
