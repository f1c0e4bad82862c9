"""Which score should DiVAE() read, and does alignment pay? (issue 27)
=====================================================================

One fit per (data set, seed, protocol, configuration) scores every candidate of
``_score_candidates.py`` on the same network, so candidates and configurations are
compared on exactly the same splits. Two protocols on every ADBench file in
``--data-dir`` (the split and scaling of ``_adbench.py``):

* ``contaminated``: fit on every training row (anomalies included, labels unused),
  as the benchmark does;
* ``clean`` (the OOD use): fit on the normal training rows only, score the whole
  test part.

Configurations: the defaults (``aligner="direct"``, weight 1), ``aligner=None``,
and the weight grid 0.3 / 3 / 10 (contaminated protocol only). Reference detectors
(IsolationForest, LOF(novelty), PyOD KNN, the teacher alone) run in both protocols.

Rule, written before the run (``RULE`` below, printed on the page): on the
selection seeds (10, 11), a candidate score is adopted as the default only if,
in *both* protocols, its mean ROC AUC with the default aligner is at least the
ELBO's and alignment raises it over ``aligner=None`` with the same score; among
those, the highest mean ROC AUC over both protocols wins. Candidates that store
training rows are reported, never adopted. The reporting seeds (0, 1, 2) then say
how the adopted score does; they choose nothing.

Round 2 (same rule, a fresh cache, every fit rerun): two candidates that drop the
ELBO's KL term, the expected reconstruction alone and the reconstruction beside the
aligned log-prior (each on its training IQR scale). A probe on synthetic tasks outside
the development sets had found the reconstruction alone ahead of the ELBO there, in both
protocols (the KL term working against it).

Every fit is appended to ``--cache`` (JSON lines), so a cut-off run resumes.

    python benchmarks/select_score.py --data-dir ../shared/data/adbench --cache /tmp/score.jsonl
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import roc_auc_score

from _report import append_jsonl, provenance, read_jsonl, write_page
from _adbench import list_datasets, load_dataset, split_and_scale, synthetic_dataset
from _score_candidates import candidate_scores, label

CONFIGS = {
    "default": {},
    "aligner=None": {"aligner": None},
    "weight=0.3": {"alignment_weight": 0.3},
    "weight=3": {"alignment_weight": 3.0},
    "weight=10": {"alignment_weight": 10.0},
}
#: Configurations run in each protocol.
PROTOCOL_CONFIGS = {
    "contaminated": list(CONFIGS),
    "clean": ["default", "aligner=None"],
}
SELECTION_SEEDS, REPORT_SEEDS = [10, 11], [0, 1, 2]
RULE = (
    "On the selection seeds (10, 11), a candidate score becomes the default only if, in both "
    "protocols, its mean ROC AUC with the default aligner is at least the ELBO's and alignment "
    "raises it over aligner=None with the same score; among those, the highest mean ROC AUC "
    "over both protocols wins. Candidates that store training rows are reported, never adopted."
)


def reference_detectors():
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    from skdivae import KNNLogDensity

    def pyod_knn(seed):
        from pyod.models.knn import KNN

        return KNN()

    return {
        "IsolationForest": (lambda s: IsolationForest(random_state=s), lambda e, X: e.score_samples(X)),
        "LOF(novelty)": (lambda s: LocalOutlierFactor(novelty=True), lambda e, X: e.score_samples(X)),
        "PyOD KNN": (pyod_knn, lambda e, X: -e.decision_function(X)),
        "teacher alone": (lambda s: KNNLogDensity(30, method="knn", n_components=8, random_state=s),
                          lambda e, X: e.score_samples(X)),
    }


def split(data, seed, protocol):
    X_train, X_test, y_test = split_and_scale(data, seed)
    if protocol == "clean":
        from sklearn.model_selection import train_test_split

        _, _, y_train, _ = train_test_split(
            data["X"], data["y"], test_size=0.3, stratify=data["y"], random_state=seed
        )
        X_train = X_train[y_train == 0]
    return X_train, X_test, y_test


def run_fit(data, seed, protocol, config, max_iter):
    """One fit: ROC AUC of every candidate (or of a reference detector) on the test part."""
    import torch

    from skdivae import DiVAE

    torch.set_num_threads(1)
    rec = {"dataset": data["name"], "seed": seed, "protocol": protocol, "config": config}
    X_train, X_test, y_test = split(data, seed, protocol)
    tic = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if config in CONFIGS:
                params = {"max_iter": max_iter, **CONFIGS[config]}
                est = DiVAE(random_state=seed, keep_density=True, **params).fit(X_train)
                scores, stats = candidate_scores(est, X_train, X_test, seed)
                rec["stats"] = stats
            else:
                make, normality = reference_detectors()[config]
                est = make(seed).fit(X_train)
                scores = {config: normality(est, X_test)}
        rec["auc"] = {
            k: float(roc_auc_score(y_test, -v)) if np.all(np.isfinite(v)) else None
            for k, v in scores.items()
        }
    except Exception as exc:  # one failure must not stop the study
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["time"] = time.perf_counter() - tic
    return rec


def key(rec):
    return rec["dataset"], rec["seed"], rec["protocol"], rec["config"]


def run_study(datasets, seeds, cache, n_jobs, max_iter, references=True):
    """Every fit not already in ``cache``; returns all records (cached and new)."""
    records = read_jsonl(cache)
    done = {key(r) for r in records if "error" not in r}
    names = list(reference_detectors()) if references else []
    tasks = [
        (d, s, p, c)
        for p, configs in PROTOCOL_CONFIGS.items()
        for c in configs + names
        for s in seeds
        for d in datasets
        if (d["name"], s, p, c) not in done
    ]
    print(f"{len(records)} fits cached, {len(tasks)} to run", flush=True)
    out = cache.open("a") if cache else None
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(run_fit)(d, s, p, c, max_iter) for d, s, p, c in tasks
    )
    for i, rec in enumerate(results, 1):
        records.append(rec)
        append_jsonl(out, rec)
        if i % 20 == 0 or "error" in rec:
            print(f"  {i}/{len(tasks)} {key(rec)} {rec.get('error', '')}", flush=True)
    return records


REFERENCES = ("IsolationForest", "LOF(novelty)", "PyOD KNN", "teacher alone")
ELBO = "elbo"
#: Candidates that keep training rows in the model (reported, never adopted).
STORES_ROWS = ("teacher rho (stores rows)", "elbo + teacher rho (IQR, stores rows)")
#: Label-free criteria for the weight: name -> (statistic of each fit, rule).
CRITERIA = {
    "held-out mean ELBO (DiVAE.score)": "test_mean_elbo",
    "held-out Spearman(log-prior, rho)": "test_spearman_prior_rho",
    "held-out Spearman(elbo+log_prior, rho)": "test_spearman_combined_rho",
    "density_agreement_score (mean of the log-prior's and the ELBO's Spearman with rho)": "agreement",
    "Spearman(log-prior, rho) within 0.05 nats/feature of the best ELBO": "budget",
}
WEIGHTS = {"aligner=None": 0.0, "weight=0.3": 0.3, "default": 1.0, "weight=3": 3.0, "weight=10": 10.0}
TIE = 0.005


def table(records, protocol, seeds):
    """``{(config, candidate): {dataset: mean ROC AUC over seeds}}`` and the stats
    ``{(config, dataset, seed): stats}``."""
    cells, stats = {}, {}
    for r in records:
        if r["protocol"] != protocol or r["seed"] not in seeds or "auc" not in r:
            continue
        for cand, auc in r["auc"].items():
            if auc is not None:
                cells.setdefault((r["config"], cand), {}).setdefault(r["dataset"], []).append(auc)
        if "stats" in r:
            stats[(r["config"], r["dataset"], r["seed"])] = {**r["stats"], "auc": r["auc"]}
    return {k: {d: float(np.mean(v)) for d, v in c.items()} for k, c in cells.items()}, stats


def mean(cell, datasets):
    vals = [cell[d] for d in datasets if d in cell]
    return float(np.mean(vals)) if len(vals) == len(datasets) else float("nan")


def wtl(a, b, datasets):
    diff = np.array([a[d] - b[d] for d in datasets])
    return int((diff > TIE).sum()), int((np.abs(diff) <= TIE).sum()), int((diff < -TIE).sum())


def ranks(columns, datasets):
    """Average rank (1 = best) of each column over the data sets."""
    from scipy.stats import rankdata

    mat = np.array([[col[d] for col in columns.values()] for d in datasets])
    return dict(zip(columns, np.vstack([rankdata(-row) for row in mat]).mean(axis=0)))


def candidate_rows(cells, datasets):
    """Per candidate: mean with the default aligner, with aligner=None, and W/T/L."""
    rows = {}
    for (config, cand), cell in cells.items():
        if config != "default":
            continue
        none = cells.get(("aligner=None", cand))
        rows[cand] = {
            "mean": mean(cell, datasets),
            "none": mean(none, datasets) if none else float("nan"),
            "wtl": wtl(cell, none, datasets) if none else (0, 0, 0),
        }
    return rows


def adopt(sel):
    """The rule: ``sel[protocol][candidate]`` rows -> (adopted candidate or None, reasons)."""
    ok = {}
    for cand in sel["contaminated"]:
        if cand in STORES_ROWS:
            continue
        passes = all(
            sel[p][cand]["mean"] >= sel[p][ELBO]["mean"] and sel[p][cand]["mean"] > sel[p][cand]["none"]
            for p in sel
        )
        if passes:
            ok[cand] = np.mean([sel[p][cand]["mean"] for p in sel])
    return (max(ok, key=ok.get) if ok else None), ok


def weight_choice(stats, score, datasets, seeds, n_features):
    """Mean regret (best weight in hindsight minus the chosen one, ROC AUC of ``score``)
    of each criterion and of the fixed default weight 1."""
    regrets = {name: [] for name in [*CRITERIA, "fixed weight 1 (default)"]}
    picks = {name: [] for name in regrets}
    for d in datasets:
        for s in seeds:
            fits = {c: stats.get((c, d, s)) for c in WEIGHTS}
            if any(f is None or f["auc"].get(score) is None for f in fits.values()):
                continue
            auc = {c: f["auc"][score] for c, f in fits.items()}
            best = max(auc.values())
            for name, stat in CRITERIA.items():
                if stat == "budget":
                    top = max(f["test_mean_elbo"] for f in fits.values())
                    allowed = {c: f for c, f in fits.items()
                               if f["test_mean_elbo"] >= top - 0.05 * n_features[d]}
                    pick = max(allowed, key=lambda c: allowed[c]["test_spearman_prior_rho"])
                elif stat == "agreement":
                    pick = max(fits, key=lambda c: fits[c]["test_spearman_prior_rho"]
                               + fits[c]["test_spearman_elbo_rho"])
                else:
                    pick = max(fits, key=lambda c: fits[c][stat])
                regrets[name].append(best - auc[pick])
                picks[name].append(WEIGHTS[pick])
            regrets["fixed weight 1 (default)"].append(best - auc["default"])
            picks["fixed weight 1 (default)"].append(1.0)
    return {n: (float(np.mean(r)), picks[n]) for n, r in regrets.items() if r}


def fmt_wtl(t):
    return f"{t[0]} / {t[1]} / {t[2]}"


def report(records, datasets, n_features, wall, score=None):
    """The study's page (markdown) and the OOD page, from the records."""
    names = [d["name"] for d in datasets]
    sel = {p: candidate_rows(table(records, p, SELECTION_SEEDS)[0], names) for p in PROTOCOL_CONFIGS}
    adopted, passing = adopt(sel)
    score = score or adopted or ELBO
    lines = [
        "# Which score DiVAE() reads, and whether alignment pays",
        "",
        provenance("select_score.py", wall),
        "",
        f"Fits: {len(records)} (DiVAE and reference detectors; those already in `--cache` "
        "were reused, not rerun); time summed over them, one thread each: "
        f"{sum(r.get('time', 0.0) for r in records) / 60:.1f} min.",
        "",
        "Protocols (the split and scaling of `benchmarks/_adbench.py`, 21 ADBench sets): "
        "**contaminated**, fit on every training row (anomalies included, labels unused), "
        "as `docs/results/adbench.md` does; **clean** (the OOD use), fit on the normal training rows "
        "only and score the whole test part. One fit per data set, seed, protocol and "
        "configuration scores every candidate (`benchmarks/_score_candidates.py`), so the "
        "candidates are compared on the same networks. Ties are within ±0.005.",
        "",
        f"Rule, written before the run: {RULE}",
        "",
        "Round 2 (run again under the same rule, every fit rerun): the candidates "
        "'reconstruction term (ELBO without its KL)' and 'reconstruction + log_prior (IQR)', "
        "which replace the ELBO's KL term by nothing or by the aligned log-prior.",
        "",
        "## Selection seeds (10, 11): every candidate",
        "",
        "| candidate | contaminated: mean ROC AUC | aligner=None, same score | W / T / L vs None "
        "| clean: mean ROC AUC | aligner=None, same score | W / T / L vs None | passes the rule |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(sel["contaminated"], key=lambda c: -sel["contaminated"][c]["mean"])
    for cand in order:
        a, b = sel["contaminated"][cand], sel["clean"].get(cand)
        verdict = "stores rows" if cand in STORES_ROWS else ("yes" if cand in passing else "no")
        lines.append(
            f"| {label(cand)} | {a['mean']:.4f} | {a['none']:.4f} | {fmt_wtl(a['wtl'])} | "
            f"{b['mean']:.4f} | {b['none']:.4f} | {fmt_wtl(b['wtl'])} | {verdict} |"
        )
    lines += ["", f"Adopted by the rule: **{label(adopted) if adopted else 'none (the ELBO stays)'}**."
              + (f" The pages below report `{score}`." if score != adopted else ""), ""]
    sel_stats = table(records, "contaminated", SELECTION_SEEDS)[1]
    lines += ["### Choosing the weight without labels (selection seeds, contaminated protocol)", ""]
    lines += criteria_section(sel_stats, score, [d["name"] for d in datasets], SELECTION_SEEDS, n_features)
    lines += reporting_section(records, names, score, n_features)
    return "\n".join(lines) + "\n", sel, adopted


def reporting_section(records, names, score, n_features):
    lines = ["## Reporting seeds (0, 1, 2)", ""]
    for protocol in PROTOCOL_CONFIGS:
        cells, stats = table(records, protocol, REPORT_SEEDS)
        if ("default", score) not in cells:
            continue
        field = {f"DiVAE() ({label(score)})": cells[("default", score)]}
        for ref in REFERENCES:
            if (ref, ref) in cells:
                field[ref] = cells[(ref, ref)]
        rk = ranks(field, names)
        lines += [f"### {protocol}", "", "Average rank among DiVAE() and the reference "
                  "detectors (1 = best):", "",
                  "| detector | mean ROC AUC | average rank |", "|---|---|---|"]
        for det in sorted(field, key=lambda k: rk[k]):
            lines.append(f"| {det} | {mean(field[det], names):.4f} | {rk[det]:.2f} |")
        lines += ["", f"The same networks read with the ELBO: {mean(cells[('default', ELBO)], names):.4f}; "
                  f"trained without alignment and read with `{label(score)}`: "
                  f"{mean(cells[('aligner=None', score)], names):.4f}."]
        a, b = cells[("default", score)], cells[("aligner=None", score)]
        gain = mean(a, names) - mean(b, names)
        lines += ["", f"Alignment with the same score ({label(score)}): {gain:+.4f} mean ROC AUC, "
                  f"wins / ties / losses {fmt_wtl(wtl(a, b, names))} (target: >= +0.01 and more "
                  "wins than losses).", ""]
        if protocol == "contaminated":
            grid = {w: mean(cells[(c, score)], names) for c, w in WEIGHTS.items() if (c, score) in cells}
            span = max(grid.values()) - min(grid.values())
            best = max(grid, key=grid.get)
            lines += ["Weight grid (`alignment_weight`, 0 = `aligner=None`): "
                      + ", ".join(f"{w:g}: {m:.4f}" for w, m in grid.items())
                      + f". Span {span:.4f} (target >= 0.02), best weight {best:g}.", ""]
            lines += criteria_section(stats, score, names, REPORT_SEEDS, n_features)
    return lines


def criteria_section(stats, score, names, seeds, n_features):
    res = weight_choice(stats, score, names, seeds, n_features)
    lines = ["Label-free choice of the weight (per data set and seed, the weight each "
             "criterion picks among 0 / 0.3 / 1 / 3 / 10; regret = ROC AUC of the best weight "
             f"in hindsight minus the picked one's, reading {label(score)}; adopted only if its mean "
             "regret is below the fixed default's):", "",
             "| criterion | mean regret | weights picked (median) | share picking 0 |", "|---|---|---|---|"]
    for name, (regret, picks) in sorted(res.items(), key=lambda kv: kv[1][0]):
        lines.append(f"| {name} | {regret:.4f} | {np.median(picks):g} | "
                     f"{np.mean(np.array(picks) == 0):.0%} |")
    return lines + [""]


def ood_page(records, names, score, wall):
    """The clean-training (OOD) page: per data set, DiVAE() beside its peers."""
    cells, _ = table(records, "clean", REPORT_SEEDS)
    cols = {"DiVAE()": cells.get(("default", score)), "DiVAE(aligner=None)": cells.get(("aligner=None", score)),
            # (the same column as DiVAE()'s when the default score is the ELBO)
            **({} if score == ELBO else {"DiVAE() reading the ELBO": cells.get(("default", ELBO))}),
            **{ref: cells.get((ref, ref)) for ref in REFERENCES}}
    cols = {k: v for k, v in cols.items() if v}
    complete = [d for d in names if all(d in c for c in cols.values())]
    if not complete or "DiVAE()" not in cols:
        return None
    rk = ranks(cols, complete)
    w = wtl(cols["DiVAE()"], cols["DiVAE(aligner=None)"], complete)
    best_peer = max(("LOF(novelty)", "PyOD KNN"), key=lambda k: mean(cols[k], complete) if k in cols else -1)
    gap = mean(cols["DiVAE()"], complete) - mean(cols[best_peer], complete)
    lines = [
        "# Out-of-distribution scoring: training on clean data", "",
        provenance("select_score.py", wall), "",
        "The OOD use: each ADBench set is split 70/30 (stratified, seeds "
        + ", ".join(map(str, REPORT_SEEDS)) + "), scaled on the training part, and every "
        "detector is fitted on the *normal* training rows only; the whole test part is scored "
        f"(anomalies as the positive class). `DiVAE()` reads its default score, {label(score)}; "
        "`DiVAE(aligner=None)` is the same network trained without alignment and read with "
        "the same score. The data sets, seeds and fits are those of "
        "[score_study.md](score_study.md)'s reporting part.", "",
        "| detector | mean ROC AUC | average rank |", "|---|---|---|",
    ]
    for k in sorted(cols, key=lambda k: rk[k]):
        lines.append(f"| {k} | {mean(cols[k], complete):.4f} | {rk[k]:.2f} |")
    lines += [
        "",
        f"- Alignment, same score: {mean(cols['DiVAE()'], complete) - mean(cols['DiVAE(aligner=None)'], complete):+.4f} "
        f"mean ROC AUC, wins / ties / losses {fmt_wtl(w)} (target: alignment does not lose).",
        f"- Against the best local-density peer ({best_peer}): {gap:+.4f} (target: at least level).",
        "",
        "## Per data set (mean ROC AUC over the seeds)", "",
        "| data set | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols),
    ]
    for d in complete:
        lines.append(f"| {d} | " + " | ".join(f"{cols[k][d]:.3f}" for k in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SELECTION_SEEDS))
    parser.add_argument("--max-rows", type=int, default=10000)
    parser.add_argument("--max-iter", default="auto")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, help="folder for score_study.md (default: print)")
    parser.add_argument("--score", help="report this candidate instead of the adopted one")
    args = parser.parse_args(argv)
    max_iter = args.max_iter if args.max_iter == "auto" else int(args.max_iter)
    if args.fast:
        datasets = [synthetic_dataset(f"synthetic_{s}", s) for s in (0, 1)]
        args.seeds, max_iter = args.seeds[:1], 5
    else:
        datasets = [load_dataset(args.data_dir, n, args.max_rows) for n in list_datasets(args.data_dir)]
    tic = time.perf_counter()
    records = run_study(datasets, args.seeds, args.cache, args.n_jobs, max_iter)
    n_features = {d["name"]: d["X"].shape[1] for d in datasets}
    if args.fast:
        SELECTION_SEEDS[:] = REPORT_SEEDS[:] = args.seeds
    text, _, adopted = report(records, datasets, n_features, time.perf_counter() - tic, args.score)
    write_page(args.out, "score_study.md", text)
    ood = ood_page(records, [d["name"] for d in datasets], args.score or adopted or ELBO,
                   time.perf_counter() - tic)
    if ood:
        write_page(args.out, "ood.md", ood)
    print(f"adopted: {adopted}; done in {(time.perf_counter() - tic) / 60:.1f} min")


if __name__ == "__main__":
    main()
