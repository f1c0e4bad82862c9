"""Writing an archive (:func:`save`): every object encoded as JSON, arrays into one npz
member, each DiVAE's weights as safetensors; the file replaced atomically."""

import errno
import io
import json
import os
import stat
import tempfile
import zipfile

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors

from ._archive_checks import check_search_tree
from ._archive_format import ARRAYS, FORMAT, FORMAT_VERSION, MANIFEST, NAMES
from ._build import network_matches
from ._divae import DiVAE

class _Writer:
    def __init__(self):
        self.arrays, self.weights = {}, []

    def encode(self, value, where):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, np.generic):
            return value
        if isinstance(value, np.generic):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"{where}: numpy scalar of dtype {value.dtype} cannot be saved.")
            return {"__type__": "scalar", "dtype": value.dtype.str, "value": value.item()}
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return items if isinstance(value, list) else {"__type__": "tuple", "items": items}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"{where}: only dicts with string keys can be saved.")
            return {"__type__": "dict",
                    "items": [[k, self.encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
        if isinstance(value, np.dtype):
            return {"__type__": "dtype", "name": value.str}
        if isinstance(value, torch.device):
            return {"__type__": "device", "name": str(value)}
        if isinstance(value, np.random.RandomState):
            name, keys, pos, has_gauss, cached = value.get_state()
            return {"__type__": "random_state", "keys": self._array(keys, where), "pos": pos,
                    "has_gauss": has_gauss, "cached": cached}
        if isinstance(value, BaseEstimator):
            return self._estimator(value, where)
        raise TypeError(
            f"{where}: an object of type {type(value).__name__} cannot be saved without pickle."
        )

    def _array(self, value, where):
        if value.dtype.kind == "O":
            if all(isinstance(v, str) for v in value.ravel()):
                return {"__type__": "str_array", "shape": list(value.shape),
                        "items": value.ravel().tolist()}
            raise TypeError(f"{where}: an object array cannot be saved without pickle.")
        if value.dtype.kind not in "biufU":
            raise TypeError(f"{where}: arrays of dtype {value.dtype} cannot be saved.")
        key = f"a{len(self.arrays)}"
        # Keep the memory layout, so that outputs computed from the loaded array are
        # bit-identical (BLAS sums in a layout-dependent order): axes walked backwards
        # (e.g. a flipped view) are stored forwards and flipped again on load, and a
        # non-contiguous view laid out column-first is stored in Fortran order.
        flips = [axis for axis, stride in enumerate(value.strides) if stride < 0]
        stored = np.flip(value, flips) if flips else value
        steps = [stride for stride, n in zip(stored.strides, stored.shape) if n > 1]
        if not stored.flags.c_contiguous and steps == sorted(steps) and len(steps) > 1:
            stored = np.asfortranarray(stored)
        self.arrays[key] = stored
        node = {"__type__": "array", "key": key}
        if flips:
            node["flip"] = flips
        return node

    def _estimator(self, est, where):
        cls = type(est)
        if cls not in NAMES:
            raise TypeError(
                f"{where}: {cls.__name__} cannot be saved safely; the supported estimators are "
                f"{', '.join(sorted(c.__name__ for c in NAMES))}. Keep it out of the model, "
                "or save with joblib/pickle and load only files you trust."
            )
        if hasattr(est, "_parameter_constraints"):
            est._validate_params()  # an archive that load would refuse is not written
        if isinstance(est, DiVAE) and hasattr(est, "module_") and not network_matches(est):
            raise ValueError(
                f"{where}: the fitted network does not have the layout that the parameters "
                "describe (a network-defining parameter was changed with set_params after "
                "fit, or the model was pickled by a skdivae whose defaults built another "
                "network, e.g. prior='gmm' in a 2-D latent space before it meant 40 "
                "components); load would refuse the archive. Set the parameter to what the "
                "network was trained with (e.g. prior=GaussianMixturePrior(n_components=10)) "
                "or refit."
            )
        params = est.get_params(deep=False)
        node = {
            "__type__": "estimator",
            "class": NAMES[cls],
            "params": {k: self.encode(v, f"{where}.{k}") for k, v in params.items()},
        }
        # partial_fit's training state (optimisers, generators) is not part of a model: a
        # loaded model's partial_fit continues its network with fresh optimiser state.
        state = {k: v for k, v in vars(est).items()
                 if k not in params and k != "_block_trainer_"}
        if isinstance(est, NearestNeighbors) and "_fit_X" in state:
            # Only the data: the search tree is rebuilt by fitting on it again (within the
            # bound load keeps to).
            check_search_tree(est, state["_fit_X"], where)
            # float32 or float64 as fitted; anything narrower as float64, since load
            # refuses it (its rebuilt index would grow past what the file declares).
            fit_X = state["_fit_X"]
            if fit_X.dtype not in (np.float32, np.float64):
                fit_X = np.asarray(fit_X, dtype=np.float64)
            state = {"_fit_X": fit_X}
        if "module_" in state:
            buffer = io.BytesIO()
            module = state.pop("module_")
            from safetensors.torch import save

            buffer.write(save({k: v.contiguous() for k, v in module.state_dict().items()}))
            node["weights"] = len(self.weights)
            self.weights.append(buffer.getvalue())
        node["state"] = {k: self.encode(v, f"{where}.{k}") for k, v in state.items()}
        return node


def _umask():
    """The process's umask, read without changing it (``os.umask`` sets it, which races
    with other threads); 0o022 where ``/proc`` does not say."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def check_links_followable(path, max_links=40):
    """Refuse to follow a chain of symbolic links at ``path`` where Linux's
    ``protected_symlinks`` rule would: a link in a sticky, world-writable folder (``/tmp``)
    that belongs neither to this user nor to the folder's owner, a link someone else may
    have planted there. (``save`` resolves links itself to replace the file they name in
    one step, so it cannot rely on ``open`` to apply the rule.)"""
    for _ in range(max_links):
        if not os.path.islink(path):
            return
        # the link's folder as the system resolves it (links first, then "..")
        folder = os.path.realpath(os.path.dirname(path) or os.curdir)
        folder_stat, link_stat = os.stat(folder), os.lstat(path)
        shared = folder_stat.st_mode & stat.S_ISVTX and folder_stat.st_mode & stat.S_IWOTH
        if shared and link_stat.st_uid not in (os.geteuid(), folder_stat.st_uid):
            raise PermissionError(
                f"{path} is a symbolic link in the shared folder {folder} owned by another "
                "user; save does not follow it (open() would not either). Save to a path of "
                "your own.")
        path = os.path.join(folder, os.readlink(path))
    raise OSError(errno.ELOOP, f"{path}: more than {max_links} symbolic links in a row; save "
                  "does not follow them (open() would not either).")


def save(estimator, path):
    """Save a fitted estimator to ``path`` in a format that runs no code when loaded.

    Parameters
    ----------
    estimator : DiVAE, KNNLogDensity or Pipeline
        An estimator built from the classes in ``skdivae._archive_format.SUPPORTED``
        (skdivae's estimators, priors and aligners; ``Pipeline``,
        ``StandardScaler``, ``MinMaxScaler``, ``RobustScaler``, ``MaxAbsScaler``,
        ``VarianceThreshold``, ``PCA``, ``GaussianMixture`` and
        ``NearestNeighbors`` from scikit-learn). A DiVAE's ``density`` must be one of them too. Usually
        fitted; an unfitted one is saved too, and loads unfitted with the same
        parameters (as ``pickle`` would keep it).
    path : str, bytes or path-like
        Where to write the archive (a zip file). A symbolic link is written
        through, to the file it names, except where ``open`` would refuse it:
        a link in a world-writable folder with the sticky bit (such as
        ``/tmp``) owned by neither you nor the folder's owner (Linux's
        ``protected_symlinks`` rule, applied on every system). A path that
        holds something other than a regular file (a folder, a device, a pipe)
        is refused, and so is a file you may not write to.

    Raises
    ------
    TypeError
        If the estimator holds an object that cannot be stored without pickle;
        the message names it. Nothing is written then.
    ValueError
        If ``path`` holds something other than a regular file.
    PermissionError
        If the file at ``path`` may not be written, or ``path`` is a link that
        ``open`` would not follow (see ``path``).

    See Also
    --------
    load : Read the archive back.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skdivae import KNNLogDensity, save, load
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> kd = KNNLogDensity(10).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "density.skdivae")
    >>> save(kd, path)
    >>> bool(np.array_equal(load(path).score_samples(X), kd.score_samples(X)))
    True
    """
    writer = _Writer()
    root = writer.encode(estimator, "estimator")
    from ._version import __version__

    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "skdivae_version": __version__,
                "root": root, "n_weights": len(writer.weights)}
    arrays = io.BytesIO()
    np.savez(arrays, **writer.arrays)
    # Written to a temporary file beside the target, flushed to disk, then moved over it in
    # one step: a failed or concurrent save never leaves a truncated archive at ``path``.
    # A link is written through (to the file it names), as open() would; anything at the
    # path that is not a regular file (a device, a pipe, a folder) is left alone.
    path = os.fsdecode(os.fspath(path))
    if not path or path.endswith((os.sep, "/")) or (os.altsep and path.endswith(os.altsep)):
        raise ValueError(f"{path!r} names a folder, not a file to write the archive to.")
    check_links_followable(path)
    path = os.path.realpath(path)
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"{path} exists and is not a regular file; save writes archives to "
                         "regular files only.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(f"{path} exists and may not be written; save does not replace "
                              "a file that open() could not write.")
    fd, tmp = tempfile.mkstemp(prefix=".skdivae-", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(MANIFEST, json.dumps(manifest))
                zf.writestr(ARRAYS, arrays.getvalue())
                for i, blob in enumerate(writer.weights):
                    zf.writestr(f"weights/{i}.safetensors", blob)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp's 0600 -> the replaced archive's own mode (a private archive stays
        # private), or what open() would have given for a new one.
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
