"""Reference numbers: the authors' DiVAE code run on the synthetic grid of our paper page
=====================================================================================

Runs the authors' synthetic runner (``scripts/exp_synthetic_runner.py`` of
``alessimichele/DiVAE-EurIPS``) once per (setup, prior, run, seed) at the reference sizes of
``benchmarks/_paper.py`` (``REFERENCE_SIZES``: 5 000 training and 2 000 validation points,
30 epochs), loads each run's checkpoint, and appends one row per run to a CSV in the format
``_paper.load_reference`` reads (``experiment`` = ``synthetic``, the columns ``setup``,
``prior``, ``run`` spelled as ``paper_synthetic.py`` spells them, ``n_train``, ``epochs``,
``seed``, and its metric columns ``pearson``, ``ks``, ``w1``, ``kl_prior``; plus ``wall_s``,
the authors' ``commit`` and a few of their own diagnostics as cross-checks). A run already in
the CSV is skipped, so a cut-off grid resumes.

Nothing of the authors' code is in this project. Their checkout and their virtual
environment are given on the command line; two small modules of ours, run with *their*
Python, import their package from the checkout and patch it in memory:
``_authors_train.py`` (runs their runner) and ``_authors_recompute.py`` (loads the
checkpoint, dumps arrays). The metrics are then computed here, with this project's Python,
exactly as ``paper_synthetic.py`` computes them: on the validation split, Pearson, KS and
W1 between the true 2-D log-density (``RotatedGaussianMixture.log_density_2d``, given the
authors' mixture and rotation) and ``log p_Z(mu(x))`` (the prior at the encoder mean); and
``paper_synthetic.prior_kl`` itself for KL(p_true || p_Z) (20 000 draws of the true mixture,
``default_rng(10_000 + seed)``; the learned prior's log-density of those draws is computed
by the authors' model).

Name mapping (ours -> their runner's flags):

- setup ``k=8, D=50`` -> ``--gmm-k 8 --gmm-dim 50 --gmm-seed 6032000``; ``k=12, D=30`` ->
  ``--gmm-k 12 --gmm-dim 30 --gmm-seed 14082005``; ``k=4, D=50`` -> ``--gmm-seed 2031965``
  (their ``scripts/replicate_exps.sh``);
- prior ``normal`` (N(0, I)) -> ``--prior standard``; ``gmm`` -> ``--prior gmm`` (K = k);
- run ``none`` -> ``--aligner none --external-density oracle`` (no ``--density-reg``, as
  their grid has it); ``direct, rho=pak`` -> ``--density-reg --aligner direct
  --external-density dpa``; ``flow, rho=pak`` -> ``--density-reg --aligner flow
  --external-density dpa`` (their ``dpa`` = dadaC PAk on PCA-2, k = 200 neighbours, TWO-NN
  intrinsic dimension); ``direct, rho=true`` / ``flow, rho=true`` -> ``--external-density
  oracle`` with ``--density-reg`` (not in the default grid);
- ``--seed`` -> ``--seed`` (it seeds training only; see rough edge 8).

Rough edges of the authors' code and how this driver works around them (their files are
never edited):

1. PyPI's torchvision (0.28.0, the pair of torch 2.13.0) is a CUDA build: with a CPU-only
   torch ``import torchvision`` fails ("operator torchvision::nms does not exist"), and
   pytorch_lightning and their ``drvae`` import it at module level. ``_authors_train.py``
   defines the two op schemas (``nms``, ``qnms``) and imports it again; no torchvision op
   is used on the synthetic path.
2. ``lightning_fabric`` 1.9.5 needs ``pkg_resources``, gone from setuptools >= 81: their venv
   pins ``setuptools<81`` (README).
3. The runner hard-codes ``gmm_train=60000, gmm_val=10000`` (no flag):
   ``_authors_train.py`` wraps ``VAEDataModule.__init__`` to substitute our sizes.
4. The runner hard-codes ``~/datasets/``, which must exist even for synthetic data: the same
   wrapper passes ``<scratch>/datasets`` instead.
5. dadaC is Linux-only C built with ``-O3 -march=native`` and OpenMP (loaded by ctypes): build
   it on the machine that runs it (README); its threads follow ``OMP_NUM_THREADS``.
6. The runner never sets torch's threads: every child gets ``OMP_NUM_THREADS=1``,
   ``MKL_NUM_THREADS=1`` (skdivae's runs use one thread per fit too) and ``nice -n 19``.
   Their DataLoaders use ``min(20, cpu_count)`` worker processes; left as is.
7. Their CSVLogger adds ``version_<n>`` folders on reruns (and warns that ``version_0`` is not
   empty, because a callback creates ``figures/`` first: harmless): each run gets its own
   fresh ``--log-root`` under ``<scratch>/runs/``, wiped before a retry.
8. The data set is fixed per setup by ``--gmm-seed`` (``--seed`` seeds training only), and
   its validation split is drawn after the training split from one generator, so it depends
   on ``n_train``: ``_authors_recompute.py`` regenerates it with their ``GMMSynth`` at the
   run's sizes, and this driver checks the regeneration against the run's own
   ``diagnostics.txt`` (mean true log-density) and ``metrics_eval.json`` (mean
   ``log p_Z(mu)``).
9. Their outputs hold only approximations of our metrics (``diagnostics.txt``'s
   ``logpdf2d_*`` use one reparameterised sample ``z ~ q(z|x)``, not the encoder mean;
   ``prior_kl`` only for a gmm prior, 10 000 draws): the metrics are recomputed from the
   checkpoint (Lightning's default ``ModelCheckpoint``: the last epoch). Their own values
   are kept in the ``authors_*`` columns.
10. ``scripts/replicate_exps.sh`` only writes command files (into the checkout) for a SLURM
    launcher that is not in the repository: this driver builds the commands itself.
11. A flow run's checkpoint does not load: their training step sets
    ``self.module.aligner.flow.base_dist = self.module.prior``, so the state dict holds the
    prior a second time under ``module.aligner.flow.base_dist.*``, which a fresh model lacks
    ("Unexpected key(s) in state_dict"). ``_authors_recompute.py`` wraps
    ``Model.on_load_checkpoint`` to make the same alias before the state is loaded (the two
    copies are one object when saved, so nothing is dropped or guessed).

``--fast`` (the test suite) needs no checkout: it runs the metric and CSV code on synthetic
arrays into ``<out>/authors.csv`` (``experiment`` = ``fast-check``, which no page reads),
checks that a second pass skips the rows already written, and reads them back with
``load_reference``.

Grid (about 50 minutes on 2 cores, one run at a time)::

    python benchmarks/reference/run_authors.py \\
        --checkout /work/scratch/authors/DiVAE-EurIPS \\
        --python /work/scratch/authors/venv/bin/python \\
        --scratch /work/scratch/authors/grid
"""

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from scipy.stats import ks_2samp, pearsonr, wasserstein_distance

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/: the page's own helpers

from _paper import REFERENCE_SIZES, load_reference, reference_cell  # noqa: E402
from paper_synthetic import KL_DRAWS, prior_kl, run_name  # noqa: E402
from skdivae.datasets import RotatedGaussianMixture  # noqa: E402

EXPERIMENT = "synthetic"
#: their --gmm-seed per setup (scripts/replicate_exps.sh)
GMM_SEEDS = {(8, 50): 6032000, (4, 50): 2031965, (12, 30): 14082005}
PRIORS = {"normal": "standard", "gmm": "gmm"}
#: command-line name -> (aligner, target) as paper_synthetic.RUNS, and their flags
RUNS = {
    "none": (("none", None), ["--aligner", "none", "--external-density", "oracle"]),
    "direct+pak": (("direct", "pak"),
                   ["--density-reg", "--aligner", "direct", "--external-density", "dpa"]),
    "flow+pak": (("flow", "pak"),
                 ["--density-reg", "--aligner", "flow", "--external-density", "dpa"]),
    "direct+true": (("direct", "true"),
                    ["--density-reg", "--aligner", "direct", "--external-density", "oracle"]),
    "flow+true": (("flow", "true"),
                  ["--density-reg", "--aligner", "flow", "--external-density", "oracle"]),
}
DEFAULT_SETUPS = ["8,50", "12,30"]
DEFAULT_PRIORS = ["normal", "gmm"]
DEFAULT_RUNS = ["none", "direct+pak", "flow+pak"]
METRICS = ["pearson", "ks", "w1", "kl_prior"]
AUTHORS_COLUMNS = ["authors_logpdf2d_corr", "authors_logpdf2d_ks", "authors_logpdf2d_wass",
                   "authors_prior_kl", "authors_prior_logpdf_mean"]
FIELDS = (["experiment", "setup", "prior", "run", "n_train", "n_val", "epochs", "seed"]
          + METRICS + ["wall_s", "commit", "gmm_seed"] + AUTHORS_COLUMNS)
KEY = ["experiment", "setup", "prior", "run", "n_train", "epochs", "seed"]
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMEXPR_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}


def parse_setup(text):
    """``"8,50"``, ``"k=8, D=50"`` or ``"8x50"`` -> ``(8, 50)``."""
    found = re.fullmatch(r"\s*(?:k=)?(\d+)\s*[,x ]\s*(?:D=)?(\d+)\s*", text, flags=re.I)
    if not found:
        raise argparse.ArgumentTypeError(f"a setup is k,D (e.g. 8,50), got {text!r}")
    return int(found.group(1)), int(found.group(2))


def setup_name(setup):
    return f"k={setup[0]}, D={setup[1]}"


# --- metrics, as paper_synthetic.py computes them --------------------------------------------

def mixture_of(dump):
    """A RotatedGaussianMixture holding the authors' mixture and rotation."""
    D = dump["rotation"].shape[0]
    data = RotatedGaussianMixture(len(dump["means"]), D, noise=0.02, random_state=0)
    data.means_ = np.asarray(dump["means"], dtype=float)
    data.scales_ = np.asarray(dump["scales"], dtype=float)
    data.rotation_ = np.asarray(dump["rotation"], dtype=float)
    return data


def learned_prior(u, log_pz_u):
    """Stands in for a fitted DiVAE in ``paper_synthetic.prior_kl``: the learned prior's
    log-density of the draws ``u``, as the authors' model computed it."""

    def log_prob(points):
        if not np.allclose(points.numpy(), u, rtol=0, atol=1e-12):
            raise RuntimeError("prior_kl draws differ from the recomputed ones")
        return torch.from_numpy(np.asarray(log_pz_u, dtype=float))

    dist = types.SimpleNamespace(log_prob=log_prob)
    return types.SimpleNamespace(module_=types.SimpleNamespace(prior_distribution=lambda: dist))


def metrics_from_dump(dump, seed):
    """Our page's metric columns from the arrays ``_authors_recompute.py`` writes."""
    data = mixture_of(dump)
    truth = data.log_density_2d(dump["X_val"])
    log_prior = np.asarray(dump["log_prior_mu"], dtype=float)
    gap = float(np.max(np.abs(truth - dump["oracle_logpdf_2d"])))
    if gap > 1e-3:
        raise RuntimeError(f"true log-density differs from the authors' oracle by {gap:.2g}")
    out = {
        "pearson": float(pearsonr(truth, log_prior)[0]),
        "ks": float(ks_2samp(truth, log_prior).statistic),
        "w1": float(wasserstein_distance(truth, log_prior)),
        "kl_prior": prior_kl(learned_prior(dump["u"], dump["log_pz_u"]), data, seed),
    }
    return out, float(truth.mean()), float(log_prior.mean())


# --- the CSV --------------------------------------------------------------------------------

def row_key(row):
    return tuple(str(row[k]) for k in KEY)


def read_rows(path):
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames and list(reader.fieldnames) != FIELDS:
            raise SystemExit(f"{path} has other columns than this driver writes; "
                             "write to another --out")
        return list(reader)


def append_row(path, row):
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in FIELDS})


def fmt(value):
    return "" if value is None else (f"{value:.8g}" if isinstance(value, float) else value)


# --- one run of the authors' code ----------------------------------------------------------

def child_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(THREAD_ENV)
    return env


def read_diagnostics(version_dir):
    """Their ``figures/diagnostics.txt`` (``key: value``) and ``figures/metrics_eval.json``."""
    diag = {}
    text = (version_dir / "figures" / "diagnostics.txt").read_text()
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            try:
                diag[key.strip()] = float(value)
            except ValueError:
                pass
    evaluation = json.loads((version_dir / "figures" / "metrics_eval.json").read_text())
    return diag, evaluation


def newest_checkpoint(log_root, epochs):
    ckpts = sorted(log_root.glob("*/version_*/checkpoints/*.ckpt"))
    if len(ckpts) != 1:
        raise RuntimeError(f"expected one checkpoint under {log_root}, found {len(ckpts)}")
    if f"epoch={epochs - 1}-" not in ckpts[0].name:
        raise RuntimeError(f"{ckpts[0].name} is not the last epoch ({epochs - 1})")
    return ckpts[0]


def run_one(args, setup, prior, run, seed, sizes, commit):
    """Train (unless done before), recompute, and return the CSV row."""
    k, D = setup
    gmm_seed = GMM_SEEDS[setup]
    tag = f"k{k}_D{D}/{prior}_{run}_seed{seed}_n{sizes['n_train']}_e{sizes['epochs']}"
    folder = args.scratch / "runs" / tag
    log_root = folder / "logs"
    done = folder / "done.json"
    python = str(args.python)
    if not done.exists():
        if folder.exists():
            shutil.rmtree(folder)  # a cut-off attempt: start it again from nothing
        folder.mkdir(parents=True)
        command = ["nice", "-n", "19", python, str(HERE / "_authors_train.py"),
                   "--checkout", str(args.checkout), "--n-train", str(sizes["n_train"]),
                   "--n-val", str(sizes["n_val"]), "--data-dir", str(args.scratch / "datasets"),
                   "--", "--prior", PRIORS[prior], *RUNS[run][1], "--gmm-k", str(k),
                   "--gmm-dim", str(D), "--gmm-seed", str(gmm_seed), "--seed", str(seed),
                   "--epochs", str(sizes["epochs"]), "--log-root", str(log_root)]
        (folder / "command.txt").write_text(" ".join(command) + "\n")
        tic = time.perf_counter()
        with (folder / "train.log").open("w") as log:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                  env=child_env(), cwd=str(folder)).returncode
        wall = time.perf_counter() - tic
        if code != 0:
            tail = (folder / "train.log").read_text()[-2000:]
            raise RuntimeError(f"their runner exited with {code} ({folder}/train.log):\n{tail}")
        newest_checkpoint(log_root, sizes["epochs"])
        done.write_text(json.dumps({"wall_s": wall}))
    wall = json.loads(done.read_text())["wall_s"]
    ckpt = newest_checkpoint(log_root, sizes["epochs"])
    dump_path = folder / "recomputed.npz"
    command = ["nice", "-n", "19", python, str(HERE / "_authors_recompute.py"),
               "--checkout", str(args.checkout), "--ckpt", str(ckpt), "--gmm-k", str(k),
               "--gmm-dim", str(D), "--gmm-seed", str(gmm_seed), "--n-train",
               str(sizes["n_train"]), "--n-val", str(sizes["n_val"]), "--seed", str(seed),
               "--kl-draws", str(KL_DRAWS), "--out", str(dump_path)]
    with (folder / "recompute.log").open("w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                              env=child_env(), cwd=str(folder)).returncode
    if code != 0:
        tail = (folder / "recompute.log").read_text()[-2000:]
        raise RuntimeError(f"the recompute exited with {code} ({folder}/recompute.log):\n{tail}")
    with np.load(dump_path) as dump:
        metrics, truth_mean, log_prior_mean = metrics_from_dump(dict(dump), seed)
    diag, evaluation = read_diagnostics(ckpt.parent.parent)
    # the regenerated data and the loaded model are the run's own
    for ours, theirs, what in ((truth_mean, diag["true_logpdf2d_mean"], "true log-density"),
                               (log_prior_mean, evaluation["prior_logpdf_mean"], "log p_Z(mu)")):
        if abs(ours - theirs) > 1e-3 * max(1.0, abs(theirs)):
            raise RuntimeError(f"mean {what} {ours:.6f} differs from the run's {theirs:.6f}")
    return {
        "experiment": EXPERIMENT, "setup": setup_name(setup), "prior": prior,
        "run": run_name(*RUNS[run][0]), "n_train": sizes["n_train"], "n_val": sizes["n_val"],
        "epochs": sizes["epochs"], "seed": seed, **{m: fmt(metrics[m]) for m in METRICS},
        "wall_s": f"{wall:.1f}", "commit": commit, "gmm_seed": gmm_seed,
        "authors_logpdf2d_corr": fmt(diag.get("logpdf2d_corr")),
        "authors_logpdf2d_ks": fmt(diag.get("logpdf2d_ks")),
        "authors_logpdf2d_wass": fmt(diag.get("logpdf2d_wass")),
        "authors_prior_kl": fmt(diag.get("prior_kl")),
        "authors_prior_logpdf_mean": fmt(evaluation.get("prior_logpdf_mean")),
    }


# --- --fast: the metric and CSV code on synthetic arrays -----------------------------------

def fast_dump(seed, n_val=300):
    """Arrays shaped like ``_authors_recompute.py``'s, from a small known mixture and a
    'learned' N(0, I) prior scored at noisy plane coordinates."""
    data = RotatedGaussianMixture(4, 6, random_state=seed)
    X, _ = data.sample(n_val, random_state=seed)
    rng = np.random.default_rng(seed)
    z = data.unrotate(X)[:, :2] / 4.0 + 0.1 * rng.normal(size=(n_val, 2))
    draw = np.random.default_rng(10_000 + seed)  # as paper_synthetic.prior_kl draws
    labels = draw.integers(4, size=KL_DRAWS)
    u = data.means_[labels] + data.scales_[labels] * draw.normal(size=(KL_DRAWS, 2))

    def log_normal(points):
        return -0.5 * (points ** 2).sum(1) - np.log(2 * np.pi)

    return {"X_val": X, "rotation": data.rotation_, "means": data.means_,
            "scales": data.scales_, "oracle_logpdf_2d": data.log_density_2d(X),
            "log_prior_mu": log_normal(z), "u": u, "log_pz_u": log_normal(u)}


def fast_check(out):
    """Two passes over a two-seed grid of synthetic arrays; the second must skip both."""
    written = []
    for attempt in range(2):
        done = {row_key(r) for r in read_rows(out)}
        for seed in (1, 2):
            metrics, _, _ = metrics_from_dump(fast_dump(seed), seed)
            row = {"experiment": "fast-check", "setup": "k=4, D=6", "prior": "normal",
                   "run": run_name("none", None), "n_train": 0, "n_val": 300, "epochs": 0,
                   "seed": seed, **{m: fmt(metrics[m]) for m in METRICS}, "wall_s": "0.0",
                   "commit": "none", "gmm_seed": ""}
            if row_key(row) in done:
                continue
            append_row(out, row)
            written.append((attempt, seed))
    if [a for a, _ in written] != [0, 0]:
        raise SystemExit(f"resume check failed: rows written {written}")
    rows = load_reference(out.parent, "fast-check")
    cells = {m: reference_cell(rows, {"setup": "k=4, D=6", "prior": "normal", "run": "none"},
                               m, 0, 0) for m in METRICS}
    if any(cell is None or cell[2] != 2 for cell in cells.values()):
        raise SystemExit(f"load_reference did not read the rows back: {cells}")
    print(f"--fast: wrote {out} (2 rows, the second pass skipped them); read back: "
          + ", ".join(f"{m} {c[0]:.3f} ± {c[1]:.3f}" for m, c in cells.items()))


# --- main ----------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, help="the DiVAE-EurIPS work tree")
    parser.add_argument("--python", type=Path, help="the Python of the authors' venv")
    parser.add_argument("--scratch", type=Path,
                        help="folder for their data folder, logs and checkpoints")
    parser.add_argument("--out", type=Path, default=HERE / "authors.csv",
                        help="the CSV (appended to); a folder means <folder>/authors.csv")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--setups", type=parse_setup, nargs="+",
                        default=[parse_setup(s) for s in DEFAULT_SETUPS],
                        help="k,D pairs (default: 8,50 12,30)")
    parser.add_argument("--priors", nargs="+", choices=sorted(PRIORS), default=DEFAULT_PRIORS)
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=DEFAULT_RUNS)
    parser.add_argument("--n-train", type=int, default=REFERENCE_SIZES["n_train"])
    parser.add_argument("--n-val", type=int, default=REFERENCE_SIZES["n_val"])
    parser.add_argument("--epochs", type=int, default=REFERENCE_SIZES["epochs"])
    parser.add_argument("--dry-run", action="store_true", help="list the runs to do, run none")
    parser.add_argument("--fast", action="store_true",
                        help="no checkout needed: check the metric and CSV code on synthetic "
                             "arrays (used by the tests)")
    args = parser.parse_args(argv)
    out = args.out / "authors.csv" if args.out.is_dir() or not args.out.suffix else args.out
    if args.fast:
        fast_check(out)
        return 0
    for name in ("checkout", "python", "scratch"):
        if getattr(args, name) is None:
            parser.error(f"--{name} is needed (or --fast)")
    args.checkout, args.scratch = args.checkout.resolve(), args.scratch.resolve()
    if not (args.checkout / "scripts" / "exp_synthetic_runner.py").exists():
        parser.error(f"{args.checkout} is not a DiVAE-EurIPS checkout")
    unknown = [s for s in args.setups if s not in GMM_SEEDS]
    if unknown:
        parser.error(f"no --gmm-seed known for {unknown}; known: {sorted(GMM_SEEDS)}")
    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    sizes = {"n_train": args.n_train, "n_val": args.n_val, "epochs": args.epochs}
    done = {row_key(r) for r in read_rows(out)}
    # seed by seed, so that a cut-off grid leaves whole seeds behind it
    todo = []
    for seed in args.seeds:
        for setup in args.setups:
            for prior in args.priors:
                for run in args.runs:
                    key = row_key({"experiment": EXPERIMENT, "setup": setup_name(setup),
                                   "prior": prior, "run": run_name(*RUNS[run][0]), **sizes,
                                   "seed": seed})
                    if key not in done:
                        todo.append((setup, prior, run, seed))
    n_grid = len(args.seeds) * len(args.setups) * len(args.priors) * len(args.runs)
    print(f"authors' commit {commit}; {n_grid} runs in the grid, {n_grid - len(todo)} already "
          f"in {out}, {len(todo)} to do", flush=True)
    if args.dry_run:
        for job in todo:
            print("  ", setup_name(job[0]), *job[1:])
        return 0
    failed, tic = [], time.perf_counter()
    for i, (setup, prior, run, seed) in enumerate(todo, 1):
        label = f"[{i}/{len(todo)}] {setup_name(setup)} {prior} {run} seed {seed}"
        print(label, "...", flush=True)
        try:
            row = run_one(args, setup, prior, run, seed, sizes, commit)
        except Exception as error:  # record it, go on with the grid, exit non-zero at the end
            failed.append(label)
            print(f"{label} FAILED: {error}", flush=True)
            continue
        append_row(out, row)
        print(f"{label}: pearson {row['pearson']} ks {row['ks']} w1 {row['w1']} "
              f"kl {row['kl_prior']} ({row['wall_s']} s; {time.perf_counter() - tic:.0f} s "
              "so far)", flush=True)
    print(f"done in {time.perf_counter() - tic:.0f} s: {len(todo) - len(failed)} rows written "
          f"to {out}, {len(failed)} failed" + "".join(f"\n  {f}" for f in failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
