"""Does the default aligner carry rho in the 2-D latent regime? (issue 27)
=======================================================================

On rotated Gaussian mixtures (``skdivae.datasets.RotatedGaussianMixture``: k
Gaussians in a 2-D plane, rotated into D dimensions, with noise), DiVAE is fitted
with a 2-D latent space and the teacher on PCA-2, as in the paper's synthetic
experiments, and the Pearson correlation between the aligned log-prior at the
posterior mean and the *true* 2-D log-density is measured on a validation sample
(``rho``'s own Pearson with the truth is the ceiling).

Eight setups span k from 4 to 12, D from 20 to 60, the normal and the gmm prior
(K = k), ``standardize`` on and off, and 40 and 100 epochs (``SETUPS``). Variants
change one thing of the default ``DirectAligner()`` at a time, besides the
baselines ``aligner=None`` and ``direct_paper``.

Rule, written before the run (``RULE``): on the selection seed (21), a variant
becomes the formulation of the 2-D regime only if its median Pearson over the
setups is at least that of ``aligner=None`` and of ``direct_paper`` and within
0.05 of rho's median; among those, the highest median wins. If none passes, the
variant with the highest median is adopted only if it beats the default's median
by more than 0.01. The reporting seeds (31, 32) choose nothing.

Every fit is one JSON line in ``--cache``, so a cut-off run resumes.

    python benchmarks/select_aligner_regime.py --cache /tmp/regime.jsonl --out docs/results
"""

import argparse
import time
from pathlib import Path

import numpy as np

from _mixtures_2d import run_fits
from _report import provenance, read_jsonl, write_page
from skdivae import DirectAligner, GaussianMixturePrior

#: (k, D, prior, standardize, epochs)
SETUPS = [
    (4, 20, "gmm", True, 40),
    (6, 40, "normal", False, 100),
    (8, 60, "gmm", False, 40),
    (10, 30, "normal", True, 40),
    (12, 50, "gmm", True, 100),
    (5, 25, "normal", False, 40),
    (9, 45, "gmm", False, 100),
    (11, 35, "normal", True, 100),
]
DEFAULT = "DirectAligner() (default)"


def _direct(**changes):
    """The default DirectAligner as it was when this study ran (``reduction="mean"``, no
    per-feature scaling, Huber threshold 1; since then aligner_2d_mixture.md and
    calibration_2d.md made its ``"auto"`` options depend on the latent size and the prior),
    pinned so that a rerun measures the same fits."""
    return DirectAligner(**{"reduction": "mean", "per_feature": False, "delta": 1.0, **changes})


VARIANTS = {
    DEFAULT: dict(aligner=_direct()),
    "aligner=None": dict(aligner=None),
    "direct_paper": dict(aligner="direct_paper"),
    "point=sample": dict(aligner=_direct(point="sample")),
    "reduction=sqrt": dict(aligner=_direct(reduction="sqrt")),
    "scaling=weight": dict(aligner=_direct(scaling="weight")),
    "calibration=None": dict(aligner=_direct(calibration=None)),
    "per_feature=True": dict(aligner=_direct(per_feature=True)),
    "alignment_weight=3": dict(aligner=_direct(), alignment_weight=3.0),
}
#: The default aligner as DiVAE() builds it today (its "auto" options resolved by latent size
#: and prior: aligner_2d_mixture.md, calibration_2d.md); reported, never selected.
CURRENT = "DirectAligner() as DiVAE() builds it today"
VARIANTS[CURRENT] = dict(aligner="direct")
SELECTION_SEEDS, REPORT_SEEDS = [21], [31, 32]
N_TRAIN, N_VAL = 20_000, 5_000
RULE = (
    "On the selection seed (21), a variant becomes the formulation of the 2-D regime only if "
    "its median Pearson over the setups is at least that of aligner=None and of direct_paper "
    "and within 0.05 of rho's median; among those, the highest median wins. If none passes, "
    "the variant with the highest median is adopted only if it beats the default's median by "
    "more than 0.01."
)


#: Networks: the paper's synthetic experiments (one hidden layer of D // 2 units, a
#: mixture prior with K = k) or what a user gets from DiVAE(n_components=2, prior=...)
#: (hidden layers (64, 64), ``prior="gmm"`` with its default ``n_components="auto"``: 40
#: components in a 2-D latent space, ``docs/results/mixture_components_2d.md``).
ARCHITECTURES = ("paper", "DiVAE defaults")


def setup_name(setup, arch="paper"):
    k, D, prior, std, epochs = setup
    name = f"k={k}, D={D}, {prior}, standardize={'on' if std else 'off'}, {epochs} epochs"
    return name if arch == "paper" else f"{name}, {arch}"


def fit_args(setup, variant, seed, n_train, n_val, arch="paper"):
    """The keyword arguments of ``measure_fit`` for one fit."""
    k, D, prior, std, epochs = setup
    net = {}
    if arch == "paper":
        net = dict(hidden_layer_sizes=(D // 2,))
        prior = GaussianMixturePrior(n_components=k) if prior == "gmm" else prior
    return dict(k=k, D=D, seed=seed, n_train=n_train, n_val=n_val, standardize=std,
                max_iter=epochs, prior=prior, **net, **VARIANTS[variant])


def run_study(variants, seeds, cache, n_jobs, n_train, n_val, setups, arch="paper"):
    records = read_jsonl(cache)
    done = {(r["setup"], r["variant"], r["seed"]) for r in records if "error" not in r}
    tasks = [({"setup": setup_name(s, arch), "variant": v, "seed": seed},
              fit_args(s, v, seed, n_train, n_val, arch))
             for seed in seeds for v in variants for s in setups
             if (setup_name(s, arch), v, seed) not in done]
    return run_fits(records, tasks, cache, n_jobs)


def medians(records, seeds, setups, arch="paper"):
    """``{variant: median Pearson over setups (each a mean over seeds)}`` plus rho's."""
    names = [setup_name(s, arch) for s in setups]
    per = {}
    for r in records:
        if r["seed"] in seeds and "pearson" in r and r["setup"] in names:
            per.setdefault(r["variant"], {}).setdefault(r["setup"], []).append(r["pearson"])
            per.setdefault("rho (the teacher)", {}).setdefault(r["setup"], []).append(r["pearson_rho"])
    table = {v: {s: float(np.mean(x)) for s, x in cells.items()} for v, cells in per.items()}
    complete = {v: c for v, c in table.items() if len(c) == len(names)}
    return {v: float(np.median(list(c.values()))) for v, c in complete.items()}, table


def adopt(med):
    ceiling = med["rho (the teacher)"]
    floor = max(med.get("aligner=None", -1), med.get("direct_paper", -1))
    passing = {v: m for v, m in med.items()
               if v in VARIANTS and v not in ("aligner=None", CURRENT) and m >= floor
               and m >= ceiling - 0.05}
    if passing:
        return max(passing, key=passing.get), passing
    cands = {v: m for v, m in med.items() if v in VARIANTS and v not in ("aligner=None", CURRENT)}
    best = max(cands, key=cands.get)
    return (best if cands[best] > med[DEFAULT] + 0.01 else None), passing


def reporting_table(records, setups, arch):
    """Median Pearson of every variant on the reporting seeds, and its per-setup wins and
    losses against aligner=None, for one network."""
    med, tab = medians(records, REPORT_SEEDS, setups, arch)
    if not med:
        return []
    lines = [f"## Reporting seeds ({', '.join(map(str, REPORT_SEEDS))}), network: {arch}", "",
             "| variant | median Pearson | wins / losses vs aligner=None (±0.01) | "
             + " | ".join(setup_name(s) for s in setups) + " |",
             "|---|---|---|" + "---|" * len(setups)]
    for v in sorted(med, key=lambda v: -med[v]):
        diff = [tab[v][s] - tab["aligner=None"][s] for s in tab[v] if s in tab.get("aligner=None", {})]
        wl = f"{sum(d > 0.01 for d in diff)} / {sum(d < -0.01 for d in diff)}"
        cells = " | ".join(f"{tab[v].get(setup_name(s, arch), float('nan')):.3f}" for s in setups)
        lines.append(f"| {v} | {med[v]:.3f} | {wl} | {cells} |")
    lines += [""] + target_lines(med, tab, setups, arch)
    return lines + [""]


def target_lines(med, tab, setups, arch):
    """The issue's targets for the default, computed: at least aligner=None's and
    direct_paper's median, and within 0.05 of rho's; also over the mixture-prior setups."""
    if DEFAULT not in med:
        return []
    rivals = {v: med[v] for v in ("aligner=None", "direct_paper") if v in med}
    gmm = [setup_name(s, arch) for s in setups if s[2] == "gmm"]
    normal = [setup_name(s, arch) for s in setups if s[2] == "normal"]

    def part_median(v, names):
        return float(np.median([tab[v][s] for s in names if s in tab[v]]))

    lines = []
    for v, label in ((DEFAULT, "Default of this study's run"), (CURRENT, "Default today")):
        if v not in med:
            continue
        beats = all(med[v] >= m for m in rivals.values())
        gap = med["rho (the teacher)"] - med[v]
        lines += [
            f"- {label} ({v}) against the baselines: median {med[v]:.3f} vs "
            + ", ".join(f"{r} {m:.3f}" for r, m in rivals.items())
            + f": {'met' if beats else 'not met'}; within 0.05 of rho's median "
            f"({med['rho (the teacher)']:.3f}): "
            + ("met." if gap <= 0.05 else f"not met, short by {gap - 0.05:.3f}."),
        ]
    shown = [v for v in (DEFAULT, CURRENT, *rivals, "rho (the teacher)") if v in tab]
    lines += [
        "- Mixture-prior setups only, median: "
        + ", ".join(f"{v} {part_median(v, gmm):.3f}" for v in shown) + ".",
        "- N(0, I) setups only, median: "
        + ", ".join(f"{v} {part_median(v, normal):.3f}" for v in shown) + ". log N(mu; 0, I) "
        "has a single peak in two dimensions, so k separated clusters get k high-density codes "
        "only under a strong pull, which the default of this study's run lacked "
        "([calibration_2d.md](calibration_2d.md)).",
    ]
    return lines


def report(records, setups, wall, chosen=None):
    med_sel, tab_sel = medians(records, SELECTION_SEEDS, setups)
    adopted, passing = adopt(med_sel)
    chosen = chosen or adopted
    lines = [
        "# The aligner in the 2-D latent regime (rotated mixtures)", "",
        provenance("select_aligner_regime.py", wall), "",
        f"Fits: {len(records)} (those already in `--cache` reused, not rerun; the fits of "
        "the reporting seeds were run by `--seeds 31 32 --variants \"DirectAligner() "
        "(default)\" aligner=None direct_paper`, with `--arch paper` and `--arch \"DiVAE "
        "defaults\"`, and later by `--seeds 31 32 --variants \"DirectAligner() as DiVAE() "
        "builds it today\"` with each `--arch`); fit time summed over them, one thread each: "
        f"{sum(r.get('time', 0.0) for r in records) / 60:.1f} min.", "",
        f"{N_TRAIN} training and {N_VAL} validation rows per fit, latent 2, the teacher on "
        "PCA-2. Network `paper`: one hidden layer of D // 2 units and a mixture prior with "
        "K = k (the paper's synthetic experiments; the selection runs on it); network "
        "`DiVAE defaults`: what `DiVAE(n_components=2, prior=...)` gives, hidden layers "
        "(64, 64) and `prior=\"gmm\"` with its default K (40 in a 2-D latent space since "
        "[mixture_components_2d.md](mixture_components_2d.md); 10 before). Pearson: the aligned "
        "log-prior at the posterior "
        "mean against the true 2-D log-density of the validation rows. `DirectAligner() "
        "(default)` and the variants built on it use `reduction=\"mean\"`, the default when "
        "this study ran ([aligner_2d_mixture.md](aligner_2d_mixture.md) then made the square "
        "root the 2-D default). `DirectAligner() as DiVAE() builds it today` is "
        "`aligner=\"direct\"` with every `\"auto\"` option resolved at fit time: in two "
        "dimensions the square root with a mixture prior, and with N(0, I) the penalty scaled "
        "per feature, averaged and quadratic up to 10 standard errors "
        "([calibration_2d.md](calibration_2d.md)); it is reported, never selected.", "",
        f"Rule, written before the run: {RULE}", "",
        "## Selection seed (21)", "",
        "| variant | median Pearson | " + " | ".join(setup_name(s) for s in setups) + " |",
        "|---|---|" + "---|" * len(setups),
    ]
    for v in sorted(med_sel, key=lambda v: -med_sel[v]):
        cells = " | ".join(f"{tab_sel[v].get(setup_name(s), float('nan')):.3f}" for s in setups)
        lines.append(f"| {v} | {med_sel[v]:.3f} | {cells} |")
    lines += ["", f"Passing the rule: {', '.join(passing) or 'none'}. Adopted: "
              f"**{adopted or 'none (the default stays)'}**.", ""]
    for arch in ARCHITECTURES:
        lines += reporting_table(records, setups, arch)
    return "\n".join(lines) + "\n", adopted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=SELECTION_SEEDS)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS),
                        help="variants to fit (none: only write the page from --cache)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--arch", choices=ARCHITECTURES, default="paper",
                        help="network of the fits to run (the page reports every one cached)")
    parser.add_argument("--fast", action="store_true", help="tiny sizes, two setups (tests)")
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    n_train, n_val, setups = N_TRAIN, N_VAL, SETUPS
    if args.fast:
        n_train, n_val = 300, 200
        setups = [(3, 6, "gmm", True, 3), (3, 6, "normal", False, 3)]
        SELECTION_SEEDS[:] = REPORT_SEEDS[:] = args.seeds = args.seeds[:1]
    records = run_study(args.variants, args.seeds, args.cache, args.n_jobs, n_train, n_val,
                        setups, args.arch)
    text, adopted = report(records, setups, time.perf_counter() - tic)
    write_page(args.out, "aligner_regime.md", text)
    print(f"adopted: {adopted}")


if __name__ == "__main__":
    main()
