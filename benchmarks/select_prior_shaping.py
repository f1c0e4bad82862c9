"""Alignment that shapes the prior instead of moving the codes (issue 27)
=====================================================================

Every earlier alignment study moved the codes: the penalty's gradient reached the
encoder, so the layout the ELBO had chosen gave way to the one rho asked for.
``score_study.md``'s second round and a probe on synthetic tasks found the cost:
alignment can lower the reconstruction term's ranking of anomalies, and on tasks
outside the development sets it lost to ``aligner=None`` in both protocols.

With a learnable prior the penalty can act on the prior alone:
``DirectAligner(move_codes=False)`` reads each code as a constant, so only the
prior's parameters (and the calibration offset) learn from it. The encoder then
answers to the ELBO alone, as without alignment, while the prior puts less mass
where rho finds the data sparse; the ELBO's KL term, which reads the prior, then
charges those rows more. A fixed N(0, I) has nothing to shape, so the candidate
uses the mixture prior (``prior="gmm"``, 10 components in eight dimensions).

This study fits, per data set, seed and protocol (``select_score.split``:
*contaminated*, every training row; *clean*, the normal training rows only):
``DiVAE()``, ``DiVAE(aligner=None)``, ``DiVAE(prior="gmm", aligner=None)``,
``DiVAE(prior="gmm")`` (the codes moved, for reference) and the candidate
``DiVAE(prior="gmm", aligner=DirectAligner(move_codes=False))``, each read with
anomaly_score="elbo" on the test part.

Rule, written before the run (``RULE``). Every fit is one JSON line in
``--cache``, so a cut-off run resumes.

    python benchmarks/select_prior_shaping.py --data-dir ../shared/data/adbench \\
        --cache results/prior_shaping.jsonl --seeds 10 11 --out docs/results

Writes ``prior_shaping.md`` into ``--out`` (default: print). ``--fast`` runs two small
synthetic sets, for the tests.
"""

import time
import warnings

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from _adbench import study_datasets, study_parser
from _report import per_config_set, provenance, read_jsonl, run_config_fits, write_page
from select_delta import TIE, mean, wtl
from select_score import split

DEFAULT = "DiVAE()"
NONE = "DiVAE(aligner=None)"
GMM_NONE = "DiVAE(prior='gmm', aligner=None)"
GMM_MOVED = "DiVAE(prior='gmm')"
CANDIDATE = "DiVAE(prior='gmm', aligner=DirectAligner(move_codes=False))"
CONFIGS = [DEFAULT, NONE, GMM_NONE, GMM_MOVED, CANDIDATE]
PROTOCOLS = ("contaminated", "clean")
SELECTION_SEEDS, REPORT_SEEDS = [10, 11], [0, 1, 2]
RULE = (
    "On the selection seeds (10, 11) of the 21 development sets, the candidate "
    "DiVAE(prior='gmm', aligner=DirectAligner(move_codes=False)) becomes the default in latent "
    "spaces of three or more dimensions (the mixture prior there too, and an aligner that "
    "shapes the prior without moving the codes) only if, in both protocols (contaminated and "
    "clean), with anomaly_score='elbo': (1) its mean ROC AUC is at least DiVAE()'s; (2) its "
    "mean ROC AUC is above that of its own unaligned model, DiVAE(prior='gmm', aligner=None), "
    "with at least as many wins as losses (ties within 0.005); and (3) in at least one "
    "protocol its mean beats DiVAE()'s by more than 0.003. DiVAE(prior='gmm') (the codes "
    "moved, as today) is reported, not a candidate (defaults.md did not adopt it). A veto "
    "outside the development sets: on the 35 synthetic and scikit-learn-bundled tasks of the "
    "robustness sweep (seeds 0, 1; a probe outside the repository, its numbers in issue 27's "
    "closing note), the candidate must not be more than 0.003 below DiVAE()'s mean in either "
    "protocol. Issue 27's own bar for any aligner applies on top: (4) on the selection seeds, "
    "in the contaminated protocol (that of docs/results/alignment_check.md), the median over "
    "data sets of the test Spearman correlation between the aligned log-prior and rho is at "
    "least 0.8, and the log-prior's mean ROC AUC is within 0.02 of the teacher's. If "
    "adopted, the reporting seeds (0, 1, 2) report issue 27's target 2 for it."
)


def make_params(config):
    from skdivae import DirectAligner

    return {
        DEFAULT: {},
        NONE: dict(aligner=None),
        GMM_NONE: dict(prior="gmm", aligner=None),
        GMM_MOVED: dict(prior="gmm"),
        CANDIDATE: dict(prior="gmm", aligner=DirectAligner(move_codes=False)),
    }[config]


def one_fit(data, seed, protocol, config, max_iter):
    import torch

    from skdivae import DiVAE

    torch.set_num_threads(1)
    rec = {"dataset": data["name"], "seed": seed, "protocol": protocol, "config": config}
    tic = time.perf_counter()
    try:
        X_train, X_test, y_test = split(data, seed, protocol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = DiVAE(random_state=seed, max_iter=max_iter, keep_density=True,
                        **make_params(config)).fit(X_train)
        rec["auc"] = float(roc_auc_score(y_test, -est.score_samples(X_test)))
        log_prior = est.set_params(anomaly_score="log_prior").score_samples(X_test)
        rec["auc_log_prior"] = float(roc_auc_score(y_test, -log_prior))
        if est.density_ is not None:  # the teacher, fitted by every configuration
            rho = est.density_.score_samples(X_test)
            rec["auc_teacher"] = float(roc_auc_score(y_test, -rho))
            rec["spearman_test"] = float(spearmanr(log_prior, rho)[0])
    except Exception as exc:  # one failure must not stop the study
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["time"] = time.perf_counter() - tic
    return rec


def run(datasets, seeds, cache, n_jobs, max_iter, configs=CONFIGS):
    return run_config_fits(one_fit, datasets, seeds, PROTOCOLS, configs, cache, n_jobs, max_iter)


def per_set(records, seeds, protocol, metric="auc"):
    """``{config: {data set: mean of metric over seeds}}``, data sets with every seed of
    every configuration only."""
    return per_config_set(records, seeds, protocol, CONFIGS, DEFAULT, metric)


def alignment_stats(records, seeds):
    """``{config: (median test Spearman, mean log-prior ROC AUC, mean teacher ROC AUC)}`` in
    the contaminated protocol, over data sets (each the mean over ``seeds``)."""
    out = {}
    for config in CONFIGS:
        rows = [r for r in records if r["config"] == config and r["seed"] in seeds
                and r["protocol"] == "contaminated" and "spearman_test" in r]
        by_set = {}
        for r in rows:
            by_set.setdefault(r["dataset"], []).append(
                (r["spearman_test"], r["auc_log_prior"], r["auc_teacher"]))
        if by_set and config not in (NONE, GMM_NONE):
            cells = np.array([np.mean(v, axis=0) for v in by_set.values()])
            out[config] = (float(np.median(cells[:, 0])), float(cells[:, 1].mean()),
                           float(cells[:, 2].mean()))
    return out


def alignment_table(stats):
    lines = ["| configuration (contaminated) | median test Spearman(log-prior, rho) | "
             "log-prior ROC AUC | teacher ROC AUC |", "|---|---|---|---|"]
    lines += [f"| {c} | {s:.3f} | {a:.4f} | {t:.4f} |" for c, (s, a, t) in stats.items()]
    return lines + [""]


def adopt(tables, alignment):
    """The rule's development-set part on the selection seeds: ``(passes, lines)``."""
    ok_all, beats, lines = True, False, []
    for protocol in PROTOCOLS:
        t = tables[protocol]
        if not all(c in t and t[c] for c in (DEFAULT, GMM_NONE, CANDIDATE)):
            lines.append(f"- {protocol}: fits missing.")
            ok_all = False
            continue
        gain = mean(t[CANDIDATE]) - mean(t[DEFAULT])
        own = mean(t[CANDIDATE]) - mean(t[GMM_NONE])
        w, ti, lo = wtl(t[CANDIDATE], t[GMM_NONE])
        ok = gain >= 0 and own > 0 and w >= lo
        ok_all &= ok
        beats |= gain > 0.003
        lines.append(
            f"- {protocol}: against DiVAE() {gain:+.4f}; against its own aligner=None {own:+.4f} "
            f"({w} / {ti} / {lo}): " + ("(1) and (2) hold." if ok else "(1) or (2) fails."))
    lines.append("- (3) more than +0.003 over DiVAE() in one protocol: "
                 + ("holds." if beats else "fails."))
    spearman, lp, teacher = (alignment[CANDIDATE] if CANDIDATE in alignment
                             else (float("nan"),) * 3)
    keeps = spearman >= 0.8 and lp >= teacher - 0.02
    lines.append(f"- (4) contaminated: median test Spearman {spearman:.3f} (at least 0.8), "
                 f"log-prior ROC AUC {lp:.4f} against the teacher's {teacher:.4f} (within "
                 "0.02): " + ("holds." if keeps else "fails."))
    return ok_all and beats and keeps, lines


def table(tables, log_prior):
    head = " | ".join(f"{p}: ROC AUC (elbo) | {p}: W / T / L vs DiVAE() | {p}: log_prior"
                      for p in PROTOCOLS)
    lines = [f"| configuration | {head} |", "|---|" + "---|---|---|" * len(PROTOCOLS)]
    for c in CONFIGS:
        cells = []
        for p in PROTOCOLS:
            t, lp = tables[p], log_prior[p]
            if c not in t or not t[c]:
                cells += ["", "", ""]
                continue
            cells += [f"{mean(t[c]):.4f}",
                      "" if c == DEFAULT else "%d / %d / %d" % wtl(t[c], t[DEFAULT]),
                      f"{mean(lp[c]):.4f}" if c in lp and c not in (NONE, GMM_NONE) else ""]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    n = {p: len(tables[p].get(DEFAULT, {})) for p in PROTOCOLS}
    return lines + ["", "Data sets: " + ", ".join(f"{p} {k}" for p, k in n.items()) + ".", ""]


def alignment_lines(tables):
    """Each prior's aligned model against its own ``aligner=None`` (issue 27's target 2)."""
    out = []
    for p in PROTOCOLS:
        t = tables[p]
        for aligned, none in ((DEFAULT, NONE), (GMM_MOVED, GMM_NONE), (CANDIDATE, GMM_NONE)):
            if aligned in t and none in t and t[aligned]:
                w, ti, lo = wtl(t[aligned], t[none])
                out.append(f"- {p}: {aligned} against {none} "
                           f"{mean(t[aligned]) - mean(t[none]):+.4f} ({w} / {ti} / {lo}).")
    return out + [""]


def report(records, wall):
    sel = {p: per_set(records, SELECTION_SEEDS, p) for p in PROTOCOLS}
    sel_lp = {p: per_set(records, SELECTION_SEEDS, p, "auc_log_prior") for p in PROTOCOLS}
    stats = alignment_stats(records, SELECTION_SEEDS)
    passes, why = adopt(sel, stats)
    lines = [
        "# Alignment that shapes the prior instead of moving the codes", "",
        provenance("select_prior_shaping.py", wall), "",
        f"Fits: {len(records)} (those in `--cache` reused); fit time summed over them, one "
        f"thread each: {sum(r['time'] for r in records) / 60:.1f} min.", "",
        "The split and scaling of `benchmarks/_adbench.py` and the two protocols of "
        "`benchmarks/select_score.py` (contaminated: every training row; clean: the normal "
        "training rows only; the whole test part scored), 21 development sets. ROC AUC of "
        "anomaly_score='elbo' (the default score) and, for the aligned models, of "
        f"anomaly_score='log_prior'. Ties within ±{TIE}.", "",
        f"Rule, written before the run: {RULE}", "",
        "## Selection seeds (10, 11)", "",
    ] + table(sel, sel_lp) + ["Each aligned model against its own unaligned one:", ""]
    lines += alignment_lines(sel) + alignment_table(stats)
    lines += ["The rule on the development sets:", ""] + why + [
        "", "Passes on the development sets: " + ("**yes** (the sweep veto is in issue 27's "
                                                  "closing note)." if passes else "**no**."), ""]
    rep = {p: per_set(records, REPORT_SEEDS, p) for p in PROTOCOLS}
    if any(rep[p].get(DEFAULT) for p in PROTOCOLS):
        rep_lp = {p: per_set(records, REPORT_SEEDS, p, "auc_log_prior") for p in PROTOCOLS}
        lines += ["## Reporting seeds (0, 1, 2)", ""] + table(rep, rep_lp) + alignment_lines(rep)
        lines += alignment_table(alignment_stats(records, REPORT_SEEDS))
    elif not passes:
        lines += ["The reporting seeds were not fitted: nothing was adopted, so the sweep "
                  "veto was not run either.", ""]
    return "\n".join(lines) + "\n", passes


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
    text, passes = report(records, time.perf_counter() - tic)
    write_page(args.out, "prior_shaping.md", text)
    print(f"passes on the development sets: {passes}")


if __name__ == "__main__":
    main()
