"""The aligner's Huber threshold in the tabular regime (issue 27)
==============================================================

``docs/results/calibration_2d.md`` found that the default penalty,
``Huber_1((s_i - rho_i) / err_i)``, pulls a code whose log-prior is many
standard errors from rho with a constant, small force: past one standard
error the Huber loss is linear. With N(0, I) in two dimensions a threshold of
10 standard errors (the penalty quadratic over the misfits that occur) raised
the log-prior's agreement with the true density from 0.69 to 0.97.

In the tabular regime (8 latent dimensions) the rows with the largest misfit
are the ones rho finds least dense, and with anomalies in the training data
those are where the anomalies are. A quadratic penalty would push their codes
further from the prior's mode, which lowers their ELBO: a way for alignment to
reach the default score. Larger alignment weights strengthen the pull on
every row and lost ROC AUC (``docs/results/adbench.md``); a larger threshold
strengthens it on the large misfits only.

This study fits, per data set, seed and protocol (``select_score.split``:
*contaminated*, every training row; *clean*, the normal training rows only),
``DiVAE()``, ``DiVAE(aligner=None)`` and ``DiVAE(aligner=DirectAligner(delta=D))``
for D in 3 and 10, each read with anomaly_score="elbo" on the test part.

Rule, written before the run (``RULE``). Every fit is one JSON line in
``--cache``, so a cut-off run resumes.

    python benchmarks/select_delta.py --data-dir ../shared/data/adbench \\
        --cache results/delta.jsonl --seeds 10 11 --out docs/results

Writes ``delta.md`` into ``--out`` (default: print). ``--fast`` runs two small
synthetic sets, for the tests.
"""

import time
import warnings

import numpy as np
from sklearn.metrics import roc_auc_score

from _adbench import study_datasets, study_parser
from _report import per_config_set, provenance, read_jsonl, run_config_fits, write_page
from select_score import split

DEFAULT = "DiVAE()"
NONE = "DiVAE(aligner=None)"
CANDIDATES = {"DirectAligner(delta=3)": 3.0, "DirectAligner(delta=10)": 10.0}
#: Round 2, after round 1 lost with anomalies in the training data, monotonically in the
#: threshold: the other direction, a pull that gives up sooner on large misfits.
CANDIDATES_2 = {"DirectAligner(delta=0.3)": 0.3, "DirectAligner(delta=0.1)": 0.1}
CONFIGS = [DEFAULT, NONE, *CANDIDATES, *CANDIDATES_2]
PROTOCOLS = ("contaminated", "clean")
SELECTION_SEEDS, REPORT_SEEDS = [10, 11], [0, 1, 2]
TIE = 0.005
RULE = (
    "On the selection seeds (10, 11) of the 21 development sets, DirectAligner(delta=D) for D "
    "in 3 and 10 becomes the default aligner's threshold in latent spaces of three or more "
    "dimensions only if, in both protocols (contaminated and clean), its mean ROC AUC "
    "(anomaly_score='elbo') is at least DiVAE()'s and it has at least as many wins as losses "
    "against DiVAE() (ties within 0.005), and in at least one protocol it beats DiVAE()'s mean "
    "by more than 0.003; if both pass, the higher mean over the two protocols wins. The "
    "reporting seeds (0, 1, 2) then report every configuration, and issue 27's target 2 "
    "(DiVAE() at least +0.01 over aligner=None, more wins than losses) for the default."
)


RULE_2 = (
    "Round 2, written after round 1's result and before its own run: the same rule, on the "
    "same selection seeds, for DirectAligner(delta=D) with D in 0.3 and 0.1 (the penalty "
    "linear, so its pull constant, from a smaller misfit on: rows where the model and rho "
    "disagree most pull least)."
)


def one_fit(data, seed, protocol, config, max_iter):
    import torch

    from skdivae import DiVAE, DirectAligner

    torch.set_num_threads(1)
    rec = {"dataset": data["name"], "seed": seed, "protocol": protocol, "config": config}
    tic = time.perf_counter()
    try:
        X_train, X_test, y_test = split(data, seed, protocol)
        params = {NONE: dict(aligner=None), DEFAULT: {}}.get(config)
        if params is None:
            params = dict(aligner=DirectAligner(delta={**CANDIDATES, **CANDIDATES_2}[config]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = DiVAE(random_state=seed, max_iter=max_iter, **params).fit(X_train)
        rec["auc"] = float(roc_auc_score(y_test, -est.score_samples(X_test)))
    except Exception as exc:  # one failure must not stop the study
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["time"] = time.perf_counter() - tic
    return rec


def run(datasets, seeds, cache, n_jobs, max_iter, configs=CONFIGS):
    return run_config_fits(one_fit, datasets, seeds, PROTOCOLS, configs, cache, n_jobs, max_iter)


def per_set(records, seeds, protocol):
    """``{config: {data set: mean ROC AUC over seeds}}``, data sets with every seed of every
    configuration only."""
    return per_config_set(records, seeds, protocol, CONFIGS, DEFAULT)


def wtl(a, b):
    d = np.array([a[k] - b[k] for k in b])
    return int(np.sum(d > TIE)), int(np.sum(np.abs(d) <= TIE)), int(np.sum(d < -TIE))


def mean(cells):
    return float(np.mean(list(cells.values()))) if cells else float("nan")


def adopt(tables, candidates=CANDIDATES):
    """The rule on the selection seeds: ``(adopted candidate or None, lines)``."""
    passing, lines = {}, []
    for cand in candidates:
        ok_all, beats, notes = True, False, []
        for protocol in PROTOCOLS:
            t = tables[protocol]
            if cand not in t or DEFAULT not in t or not t[DEFAULT]:
                ok_all = False
                notes.append(f"{protocol}: fits missing")
                continue
            w, ti, lo = wtl(t[cand], t[DEFAULT])
            gain = mean(t[cand]) - mean(t[DEFAULT])
            ok_all &= gain >= 0 and w >= lo
            beats |= gain > 0.003
            notes.append(f"{protocol} {gain:+.4f} ({w} / {ti} / {lo})")
        ok = ok_all and beats
        lines.append(f"- {cand} against DiVAE(): " + "; ".join(notes) + ": "
                     + ("passes." if ok else "does not pass."))
        if ok:
            passing[cand] = np.mean([mean(tables[p][cand]) for p in PROTOCOLS])
    return (max(passing, key=passing.get) if passing else None), lines


def table(tables):
    lines = ["| configuration | " + " | ".join(
        f"{p}: mean ROC AUC | {p}: W / T / L vs DiVAE()" for p in PROTOCOLS) + " |",
        "|---|" + "---|---|" * len(PROTOCOLS)]
    for c in CONFIGS:
        cells = []
        for p in PROTOCOLS:
            t = tables[p]
            if c not in t or not t[c]:
                cells += ["", ""]
                continue
            cells += [f"{mean(t[c]):.4f}", "" if c == DEFAULT else "%d / %d / %d" % wtl(t[c], t[DEFAULT])]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    n = {p: len(tables[p].get(DEFAULT, {})) for p in PROTOCOLS}
    return lines + ["", "Data sets: " + ", ".join(f"{p} {k}" for p, k in n.items()) + ".", ""]


def target_lines(tables, name):
    out = []
    for p in PROTOCOLS:
        t = tables[p]
        if name not in t or NONE not in t or not t[name]:
            continue
        w, ti, lo = wtl(t[name], t[NONE])
        gain = mean(t[name]) - mean(t[NONE])
        met = gain >= 0.01 and w > lo
        out.append(f"- {p}: {name} against aligner=None {gain:+.4f} ({w} / {ti} / {lo}): "
                   + ("met." if met else "not met."))
    return out


def report(records, wall):
    sel = {p: per_set(records, SELECTION_SEEDS, p) for p in PROTOCOLS}
    adopted, why = adopt(sel)
    lines = [
        "# The aligner's Huber threshold in the tabular regime", "",
        provenance("select_delta.py", wall), "",
        f"Fits: {len(records)} (those in `--cache` reused); fit time summed over them, one "
        f"thread each: {sum(r['time'] for r in records) / 60:.1f} min.", "",
        "The split and scaling of `benchmarks/_adbench.py` and the two protocols of "
        "`benchmarks/select_score.py` (contaminated: every training row; clean: the normal "
        "training rows only; the whole test part scored), 21 development sets, "
        "anomaly_score='elbo'. `DirectAligner(delta=D)` is the default aligner with only its "
        "Huber threshold changed (in standard errors of rho). Ties within ±0.005.", "",
        f"Rule, written before the run: {RULE}", "",
        "## Selection seeds (10, 11)", "",
    ] + table(sel) + why + ["", "Adopted: " + (f"**{adopted}**." if adopted else
                                               "**none** (the threshold stays 1)."), ""]
    if not adopted and any(c in sel[p] for c in CANDIDATES_2 for p in PROTOCOLS):
        adopted, why_2 = adopt(sel, CANDIDATES_2)
        lines += ["### Round 2", "", f"Rule: {RULE_2}", ""] + why_2 + [
            "", "Adopted in round 2: " + (f"**{adopted}**." if adopted else
                                          "**none** (the threshold stays 1)."), ""]
    rep = {p: per_set(records, REPORT_SEEDS, p) for p in PROTOCOLS}
    if any(rep[p].get(DEFAULT) for p in PROTOCOLS):
        lines += ["## Reporting seeds (0, 1, 2)", ""] + table(rep)
        lines += ["Issue 27's target 2 (at least +0.01 over aligner=None with more wins than "
                  "losses):", ""] + target_lines(rep, DEFAULT)
        if adopted:
            lines += target_lines(rep, adopted)
        lines += [""]
    elif not adopted:
        lines += ["The reporting seeds were not fitted: nothing was adopted. DiVAE() against "
                  "aligner=None on them is in [score_study.md](score_study.md).", ""]
    return "\n".join(lines) + "\n", adopted


def main(argv=None):
    parser = study_parser(__doc__.splitlines()[0], SELECTION_SEEDS)
    parser.add_argument("--configs", nargs="*", default=CONFIGS, choices=CONFIGS,
                        help="configurations to fit (default: all)")
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    datasets, max_iter = study_datasets(parser, args, SELECTION_SEEDS, REPORT_SEEDS)
    records = run(datasets, args.seeds, args.cache, args.n_jobs, max_iter, args.configs) \
        if args.seeds \
        else [r for r in read_jsonl(args.cache) if "error" not in r]
    text, adopted = report(records, time.perf_counter() - tic)
    write_page(args.out, "delta.md", text)
    print(f"adopted: {adopted}")


if __name__ == "__main__":
    main()
