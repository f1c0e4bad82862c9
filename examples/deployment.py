"""Deployment: save without pickle, load anywhere, search and score on a Dask cluster
====================================================================================

What ``docs/deployment.md`` describes, run end to end:

1. fit a ``Pipeline(StandardScaler, DiVAE)`` and save it with ``skdivae.save``
   (JSON + ``.npz`` + safetensors in one zip file; no pickle);
2. load it back with ``skdivae.load`` and check that the scores are
   bit-identical;
3. start a ``dask.distributed.LocalCluster`` (2 workers), run
   ``GridSearchCV`` over ``alignment_weight`` under
   ``joblib.parallel_backend("dask")`` and check that it picks the same
   weight as the default backend;
4. score a ``dask.array`` block by block with ``skdivae.score_blockwise`` and
   compare with in-memory scoring;
5. save a pipeline that starts with a ``ColumnTransformer`` (which ``skdivae.save``
   refuses) in two parts, the preprocessing with joblib and the DiVAE with
   ``skdivae.save``, rebuild it and check that the scores are bit-identical.

Needs the ``dask`` extra (``pip install "skdivae[dask]"``). ``--fast`` shrinks
the data and the fits for the test suite; ``--out`` is the folder for the
saved model (a temporary folder by default).
"""

import argparse
import importlib.util
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skdivae
from skdivae import DiVAE


def make_data(n, seed=0):
    """Correlated Gaussian inliers with a few uniform outliers, 6 columns."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(6, 6))
    inliers = rng.normal(size=(n, 6)) @ A
    return np.vstack([inliers, rng.uniform(-8, 8, size=(n // 20, 6))])


def two_part_save(X, epochs, folder):
    """Fit ``ColumnTransformer`` + DiVAE on a frame with a categorical column, save the
    preprocessing with joblib and the DiVAE with ``skdivae.save``, rebuild the pipeline and
    say whether its scores are bit-identical."""
    import joblib
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["kind"] = np.where(X[:, 0] > 0, "a", "b")
    encode = ColumnTransformer([
        ("numeric", StandardScaler(), [f"x{i}" for i in range(X.shape[1])]),
        ("categorical", OneHotEncoder(sparse_output=False), ["kind"])])
    model = make_pipeline(encode, DiVAE(max_iter=epochs, random_state=0)).fit(frame)
    try:
        skdivae.save(model, folder / "refused.skdivae")
    except TypeError:  # the ColumnTransformer cannot be stored without pickle
        pass
    else:
        raise AssertionError("skdivae.save stored a ColumnTransformer")
    joblib.dump(model[:-1], folder / "preprocessing.joblib")
    skdivae.save(model[-1], folder / "divae.skdivae")
    preprocessing = joblib.load(folder / "preprocessing.joblib")
    rebuilt = Pipeline(preprocessing.steps + [("divae", skdivae.load(folder / "divae.skdivae"))])
    return np.array_equal(rebuilt.score_samples(frame), model.score_samples(frame))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small data and fits (the tests)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the saved model")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    n, epochs = (400, 5) if args.fast else (5000, 40)
    X = make_data(n)
    folder = args.out or Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)

    # 1-2. save and load without pickle
    model = make_pipeline(StandardScaler(), DiVAE(max_iter=epochs, random_state=0)).fit(X)
    path = folder / "detector.skdivae"
    skdivae.save(model, path)
    loaded = skdivae.load(path)
    same = np.array_equal(loaded.score_samples(X), model.score_samples(X))
    print(f"saved {path} ({path.stat().st_size / 1024:.0f} KiB); loaded scores bit-identical: {same}")

    # 5. a ColumnTransformer in front: two parts, joblib for it and skdivae.save for the DiVAE
    if importlib.util.find_spec("pandas") is None:
        print("pandas is not installed: skipping the two-part save")
    else:
        same = two_part_save(X, epochs, folder)
        print(f"ColumnTransformer pipeline saved in two parts; rebuilt scores bit-identical: "
              f"{same}")
        if not same:
            raise SystemExit("the rebuilt pipeline's scores differ")

    # 3-4. a Dask cluster for search and scoring
    try:
        import dask.array as da
        from distributed import Client, LocalCluster
    except ImportError:
        print("dask is not installed (pip install 'skdivae[dask]'): skipping the cluster part")
        return
    from joblib import parallel_backend

    def search():
        grid = GridSearchCV(
            DiVAE(max_iter=epochs, random_state=0),
            {"alignment_weight": [0.0, 1.0, 3.0]},
            cv=KFold(3, shuffle=True, random_state=0),
        )
        return grid.fit(StandardScaler().fit_transform(X))

    tic = time.perf_counter()
    serial = search()
    serial_s = time.perf_counter() - tic
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        tic = time.perf_counter()
        with parallel_backend("dask"):
            on_dask = search()
        dask_s = time.perf_counter() - tic
        print(f"GridSearchCV best_params_: default backend {serial.best_params_} ({serial_s:.1f} s), "
              f"dask backend {on_dask.best_params_} ({dask_s:.1f} s); same: "
              f"{serial.best_params_ == on_dask.best_params_}")
        lazy = skdivae.score_blockwise(loaded, da.from_array(X, chunks=(len(X) // 4, -1)))
        blockwise = client.compute(lazy).result()
        diff = np.max(np.abs(blockwise - loaded.score_samples(X)))
        print(f"blockwise scores of a dask array ({lazy.numblocks[0]} blocks) vs in memory: "
              f"max abs difference {diff:.1e}")


if __name__ == "__main__":
    main()
