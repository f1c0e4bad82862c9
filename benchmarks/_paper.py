"""Helpers shared by the paper-reproduction scripts: a per-fit cache, the verdict rule, and
the side-by-side lookup of the authors' reference numbers."""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

#: The sizes of the reference runs of the authors' code (``benchmarks/reference/README.md``).
REFERENCE_SIZES = {"n_train": 5_000, "n_val": 2_000, "epochs": 30}
#: The authors' KL estimator for mixture priors (50 Monte Carlo draws; skdivae's default
#: is the closed-form bound, docs/results/performance.md).
PAPER_KL = "monte_carlo"

#: The verdict rule, stated once and applied to every claim (written into the reports
#: before any number).
VERDICT_RULE = (
    "**Verdict rule (fixed before the runs).** For each compared pair of configurations "
    "(aligned vs the same-prior baseline, unless a claim says otherwise) the change is the "
    "difference of the two means over seeds, signed so that positive is the direction the "
    "paper claims; the noise is 2 × the pooled seed sd (sample sd over seeds, ddof = 1), "
    "2·sqrt((sd_a² + sd_b²) / 2). A pair "
    "*holds* when change > noise, *does not hold* when change < −noise, and is *within "
    "seed noise* otherwise. A claim over several pairs holds when at least half of its pairs "
    "hold and more hold than fail; it does not hold when at least half fail and more fail "
    "than hold; otherwise it is within seed noise. A claim over several metrics at once "
    "(\"lower KS and W1 and higher Pearson\") counts a pair as holding only when every metric "
    "holds and as failing when any metric fails."
)


#: Seeds behind the table being judged; with fewer than 2 there is no seed noise to
#: compare with, and no pair gets a verdict (set by the scripts before judging).
N_SEEDS = {"n": 3}
NO_VERDICT = "no verdict (one seed)"


def pair_verdict(better, worse_or_base, direction):
    """Verdict for one pair of ``(mean, sd)``: ``direction`` +1 if higher is the claim."""
    if N_SEEDS["n"] < 2:
        return NO_VERDICT
    change = direction * (better[0] - worse_or_base[0])
    noise = 2.0 * np.sqrt((better[1] ** 2 + worse_or_base[1] ** 2) / 2.0)
    if change > noise:
        return "holds"
    if change < -noise:
        return "does not hold"
    return "within seed noise"


def combine_metrics(verdicts):
    """One verdict for a pair judged on several metrics at once."""
    if any(v == NO_VERDICT for v in verdicts):
        return NO_VERDICT
    if any(v == "does not hold" for v in verdicts):
        return "does not hold"
    if all(v == "holds" for v in verdicts):
        return "holds"
    return "within seed noise"


def claim_verdict(verdicts):
    """One verdict for a claim made over several pairs."""
    if any(v == NO_VERDICT for v in verdicts):
        return NO_VERDICT
    n = len(verdicts)
    holds = sum(v == "holds" for v in verdicts)
    fails = sum(v == "does not hold" for v in verdicts)
    if n and holds > fails and holds >= n / 2:
        return "holds"
    if n and fails > holds and fails >= n / 2:
        return "does not hold"
    return "within seed noise"


def tally(verdicts):
    """``"3 hold, 1 within noise, 0 fail"`` for a list of pair verdicts."""
    return (
        f"{sum(v == 'holds' for v in verdicts)} hold, "
        f"{sum(v == 'within seed noise' for v in verdicts)} within seed noise, "
        f"{sum(v == 'does not hold' for v in verdicts)} do not hold"
    )


class FitCache:
    """One JSON file per fit under ``folder``, keyed by the fit's full description, so that a
    cut-off run resumes where it stopped (``folder=None`` caches nothing)."""

    def __init__(self, folder):
        self.folder = None if folder is None else Path(folder)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key):
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.folder / f"{digest}.json"

    def get(self, key):
        if self.folder is None or not self._path(key).exists():
            return None
        stored = json.loads(self._path(key).read_text())
        return stored["row"] if stored["key"] == key else None

    def put(self, key, row):
        if self.folder is not None:
            tmp = self._path(key).with_suffix(".tmp")
            tmp.write_text(json.dumps({"key": key, "row": row}))
            tmp.replace(self._path(key))
        return row


def check_reference_dir(parser, folder):
    """A command-line error when ``--reference-dir`` names no folder (a typo would
    otherwise give a page whose reference columns are empty and that says none was given)."""
    if folder is not None and not Path(folder).is_dir():
        parser.error(f"--reference-dir {folder} is not a folder (the authors' numbers are in "
                     "benchmarks/reference)")


def load_reference(folder, experiment):
    """Rows of ``<folder>/*.csv`` whose ``experiment`` column equals ``experiment``.

    The reference CSV has one row per run of the authors' code; the columns this
    project reads are ``experiment``, the configuration columns of the report
    (``setup``, ``prior``, ``run`` for the synthetic grid; ``prior``, ``aligner``
    for MNIST), ``n_train``, ``epochs``, ``seed`` and metric columns named as in
    the report. Returns ``[]`` when the folder or a matching row is missing.
    """
    if folder is None or not Path(folder).is_dir():
        return []
    rows = []
    for path in sorted(Path(folder).glob("*.csv")):
        with path.open(newline="") as fh:
            rows += [r for r in csv.DictReader(fh) if r.get("experiment") == experiment]
    return rows


def reference_cell(rows, match, metric, n_train, epochs):
    """``(mean, sd, n)`` of ``metric`` over the reference rows that match the configuration
    and the sizes, or ``None``."""
    values = []
    for r in rows:
        if all(str(r.get(k, "")) == str(v) for k, v in match.items()) and str(
            r.get("n_train")
        ) == str(n_train) and str(r.get("epochs")) == str(epochs):
            try:
                values.append(float(r[metric]))
            except (KeyError, TypeError, ValueError):
                continue
    if not values:
        return None
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), sd, len(values)


def agreement_lines(cells, metrics, digits=3):
    """Per metric, whether our runs and the authors' agree: ``cells`` is a list of
    ``(label, {metric: ((ours mean, sd), reference_cell or None)})``. A configuration
    agrees when the two means differ by at most the noise of ``VERDICT_RULE``
    (2 x the pooled seed sd); the lines name every configuration where they differ."""
    lines = []
    for metric, title in metrics.items():
        agree, differ = 0, []
        for label, values in cells:
            ours, ref = values.get(metric, (None, None))
            if ours is None or ref is None or ref[2] < 2 or N_SEEDS["n"] < 2:
                continue
            noise = 2.0 * np.sqrt((ours[1] ** 2 + ref[1] ** 2) / 2.0)
            if abs(ours[0] - ref[0]) <= noise:
                agree += 1
            else:
                differ.append(f"{label} (ours {ours[0]:.{digits}f} ± {ours[1]:.{digits}f}, "
                              f"theirs {ref[0]:.{digits}f} ± {ref[1]:.{digits}f})")
        total = agree + len(differ)
        if not total:
            continue
        text = (f"- **{title}**: agree within seed noise in {agree} of {total} configurations"
                + (f"; differ in {len(differ)}: " + "; ".join(differ) + "." if differ else "."))
        lines.append(text)
    return lines


def with_reference(ours, ref, digits=3):
    """``"ours | ref"`` table cells; ``ref`` is ``reference_cell``'s value or ``None``."""
    from _report import mean_sd

    ref_text = "—" if ref is None else f"{ref[0]:.{digits}f} ± {ref[1]:.{digits}f}"
    return f"{mean_sd(ours, digits)} | {ref_text}"


def reference_note(ref_dir, ref_rows):
    """The sentence that says where the reference columns come from, or why they are empty."""
    if ref_dir is None or not Path(ref_dir).is_dir():
        return ("No reference folder was given or found (`--reference-dir`), so every reference "
                "column reads —: there are no numbers of the authors' code to compare with on "
                "this machine.")
    if not ref_rows:
        return f"`{ref_dir}` holds no rows for this experiment: every reference column reads —."
    return (f"Reference columns: the authors' code as run in `{ref_dir}` (its README says how), "
            "at the same sizes; — where it has no run with these settings.")
