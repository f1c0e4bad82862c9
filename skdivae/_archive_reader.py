"""Reading an archive (:func:`load`): the JSON tree decoded into the classes of a fixed
table, each check of ``_archive_checks`` applied before anything is built, a DiVAE's
network laid out from its parameters and its weights loaded strictly."""

import io
import json
import lzma
import os
import zipfile
import zlib
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline

from ._archive_checks import (
    MAX_ESTIMATORS,
    MAX_MANIFEST_BYTES,
    MAX_NODES,
    UnsafeArchiveError,
    check_architecture,
    check_compression,
    check_divae_state,
    check_feature_names,
    check_fitted_shapes,
    check_fitted_values,
    check_inner_sizes,
    check_search_tree,
    check_state_names,
    count_tensors,
    divae_required_state,
    inflate_cap,
    read_member,
    unique_keys,
)
from ._archive_format import (
    ARRAYS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MAX_DEPTH,
    READABLE_VERSIONS,
    SUPPORTED,
)
from ._build import build_network, network_skeleton, tensor_shapes
from ._divae import DiVAE
from .aligners import DirectAligner
from .priors import LOW_DIM, GaussianMixturePrior, StandardNormalPrior, VampPrior


def _low_dim(n_latent):
    """Whether ``n_latent`` is a latent size of at most ``LOW_DIM``, where the ``"auto"``
    options resolve differently: ``GaussianMixturePrior(n_components="auto")`` (not the
    10 components ``prior="gmm"`` meant before format version 3) and the default aligner
    with N(0, I) (before format version 5, see ``_aligner_before_version_5``)."""
    return isinstance(n_latent, Integral) and n_latent <= LOW_DIM


def _fixed_normal_low_dim(params):
    """Whether a DiVAE's parameters give a fixed N(0, I) prior in a latent space of at most
    ``LOW_DIM`` dimensions, where the default aligner's ``"auto"`` options changed meaning
    in format version 5."""
    prior = params.get("prior", "auto")
    normal = (isinstance(prior, str) and prior == "normal") or isinstance(prior, StandardNormalPrior)
    return normal and _low_dim(params.get("n_components"))


def _aligner_before_version_5(aligner):
    """What ``aligner`` meant there before format version 5 (see ``READABLE_VERSIONS``)."""
    if isinstance(aligner, str) and aligner == "direct":
        return DirectAligner(per_feature=False, reduction="sqrt", delta=1.0)
    if isinstance(aligner, DirectAligner) and aligner.reduction == "auto":
        return aligner.set_params(reduction="sqrt")
    return aligner


class _Reader:
    def __init__(self, arrays, weights, version=FORMAT_VERSION):
        self.arrays, self.weights, self.version = arrays, weights, version
        self.used_weights, self.used_arrays, self.n_estimators, self.n_nodes = set(), set(), 0, 0

    def decode(self, node, where, depth=0):
        self.n_nodes += 1
        if self.n_nodes > MAX_NODES:  # a small manifest of many tiny entries
            raise UnsafeArchiveError(f"{where}: more than {MAX_NODES} entries in the manifest.")
        if depth > MAX_DEPTH:
            raise UnsafeArchiveError(f"{where}: entries nested deeper than {MAX_DEPTH} levels.")
        if node is None or isinstance(node, (bool, str, int, float)):
            return node
        if isinstance(node, list):
            return [self.decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node)]
        if not isinstance(node, dict) or "__type__" not in node:
            raise UnsafeArchiveError(f"{where}: malformed entry in the archive.")
        kind = node["__type__"]
        try:
            if kind == "tuple":
                return tuple(
                    self.decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node["items"])
                )
            if kind == "dict":
                out = {}
                for k, v in node["items"]:
                    if str(k) in out:  # as for the manifest's own keys: no silent last-wins
                        raise UnsafeArchiveError(f"{where}: the key {str(k)!r} is repeated.")
                    out[str(k)] = self.decode(v, f"{where}[{k!r}]", depth + 1)
                return out
            if kind == "scalar":
                dtype = np.dtype(str(node["dtype"]))
                if dtype.kind not in "biuf":
                    raise UnsafeArchiveError(f"{where}: scalar dtype {dtype} is not allowed.")
                return dtype.type(node["value"])
            if kind == "array":
                value = self._array(node["key"], where)
                flips = node.get("flip", [])
                if not isinstance(flips, list) or any(
                    type(a) is not int or not 0 <= a < value.ndim for a in flips
                ) or len(set(flips)) != len(flips):
                    raise UnsafeArchiveError(f"{where}: malformed array layout {flips!r}.")
                return np.flip(value, flips) if flips else value
            if kind == "str_array":
                out = np.empty(len(node["items"]), dtype=object)
                out[:] = [str(s) for s in node["items"]]
                return out.reshape(node["shape"])
            if kind == "dtype":
                dtype = np.dtype(str(node["name"]))
                if dtype.hasobject or dtype.kind not in "biufU":
                    raise UnsafeArchiveError(f"{where}: dtype {dtype} is not allowed.")
                return dtype
            if kind == "device":
                return torch.device(str(node["name"]))
            if kind == "random_state":
                rs = np.random.RandomState()
                keys = self.decode(node["keys"], where, depth + 1)
                rs.set_state(("MT19937", keys, int(node["pos"]), int(node["has_gauss"]),
                              float(node["cached"])))
                return rs
            if kind == "estimator":
                return self._estimator(node, where, depth)
        except UnsafeArchiveError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
                RuntimeError) as exc:
            raise UnsafeArchiveError(f"{where}: malformed {kind!r} entry ({exc}).") from exc
        raise UnsafeArchiveError(f"{where}: unknown entry type {kind!r}.")

    def _array(self, key, where):
        if not isinstance(key, str) or key not in self.arrays:
            raise UnsafeArchiveError(f"{where}: array {key!r} is missing from {ARRAYS}.")
        if key in self.used_arrays:  # each stored array is one value (no amplification)
            raise UnsafeArchiveError(f"{where}: array {key!r} is used twice.")
        self.used_arrays.add(key)
        return self.arrays[key]

    def _estimator(self, node, where, depth):
        self.n_estimators += 1
        if self.n_estimators > MAX_ESTIMATORS:
            raise UnsafeArchiveError(f"{where}: more than {MAX_ESTIMATORS} estimators in one archive.")
        name = node["class"]
        if not isinstance(name, str) or name not in SUPPORTED:
            raise UnsafeArchiveError(
                f"{where}: {name!r} is not a type this loader rebuilds; allowed: "
                f"{', '.join(sorted(SUPPORTED))}."
            )
        cls = SUPPORTED[name]
        if not isinstance(node["params"], dict) or not isinstance(node["state"], dict):
            raise UnsafeArchiveError(f"{where}: parameters and state must be mappings.")
        params = {k: self.decode(v, f"{where}.{k}", depth + 1) for k, v in node["params"].items()}
        state = {k: self.decode(v, f"{where}.{k}", depth + 1) for k, v in node["state"].items()}
        n_jobs, n_cpus = params.get("n_jobs"), os.cpu_count() or 1
        if isinstance(n_jobs, Integral) and not isinstance(n_jobs, bool) and n_jobs > n_cpus:
            params["n_jobs"] = n_cpus  # a file cannot make joblib start more workers than CPUs
        if cls is Pipeline and params.get("memory") is not None:
            # A cache folder named by the file would make later refits read joblib pickles.
            raise UnsafeArchiveError(f"{where}: a Pipeline with memory= is not loaded.")
        if self.version == 1 and cls in (GaussianMixturePrior, VampPrior):
            params.setdefault("kl", "monte_carlo")
        if self.version == 1 and cls is DiVAE and params.get("prior") in ("gmm", "vamp"):
            shorthand = {"gmm": GaussianMixturePrior, "vamp": VampPrior}[params["prior"]]
            params["prior"] = shorthand(kl="monte_carlo")
        if self.version < 4 and cls is DiVAE:
            params.setdefault("prior", "normal")  # the default before prior="auto"
            if isinstance(params["prior"], str) and params["prior"] == "auto":
                raise UnsafeArchiveError(
                    f"{where}: prior='auto' did not exist in format version {self.version}."
                )
        if self.version < 5 and cls is DirectAligner:
            for key in ("per_feature", "delta"):
                if isinstance(params.get(key), str) and params[key] == "auto":
                    raise UnsafeArchiveError(
                        f"{where}: {key}='auto' did not exist in format version {self.version}."
                    )
        if self.version < 5 and cls is DiVAE and _fixed_normal_low_dim(params):
            params["aligner"] = _aligner_before_version_5(params.get("aligner", "direct"))
        if self.version < 3 and cls is DiVAE and isinstance(params.get("prior"), GaussianMixturePrior) \
                and params["prior"].n_components == "auto" and _low_dim(params.get("n_components")):
            params["prior"].set_params(n_components=10)  # the shorthand's meaning before "auto"
        if self.version < 3 and cls is DiVAE and isinstance(params.get("prior"), str) \
                and params["prior"] == "gmm" \
                and _low_dim(params.get("n_components")):
            params["prior"] = GaussianMixturePrior(n_components=10)
        try:
            est = cls(**params)
        except TypeError as exc:
            raise UnsafeArchiveError(f"{where}: parameters do not fit {name} ({exc}).") from exc
        if cls is NearestNeighbors:
            if "_fit_X" not in state:
                return est
            fit_X = state["_fit_X"]
            if not isinstance(fit_X, np.ndarray) or fit_X.ndim != 2 \
                    or fit_X.dtype not in (np.float32, np.float64):
                # (a tree is built in float64: float16, bool or int data would grow 4- to
                # 8-fold; float32 doubles, within check_search_tree's bound)
                raise UnsafeArchiveError(
                    f"{where}: _fit_X must be a 2-D float32 or float64 array.")
            check_search_tree(est, fit_X, where)
            return est.fit(fit_X)
        check_state_names(cls, state, where)
        if getattr(est, "memory", None) is not None:
            raise UnsafeArchiveError(f"{where}: a Pipeline with memory= is not loaded.")
        if hasattr(est, "_parameter_constraints"):
            try:  # the class's own parameter constraints, as fit would check them
                est._validate_params()
            except ValueError as exc:
                raise UnsafeArchiveError(f"{where}: invalid parameters ({exc}).") from exc
        if cls is DiVAE and "n_features_in_" in state:
            missing = sorted(divae_required_state(est) - set(state))
            if missing:
                raise UnsafeArchiveError(f"{where}: the fitted state lacks {', '.join(missing)}.")
        for k, v in state.items():
            setattr(est, k, v)
        check_feature_names(est, where)
        fitted_divae = cls is DiVAE and "n_features_in_" in state
        if ("weights" in node) != fitted_divae:
            if cls is DiVAE and "weights" in node:
                raise UnsafeArchiveError(
                    f"{where}: network weights are stored but the fitted state lacks "
                    "n_features_in_ (a fitted DiVAE has both)."
                )
            raise UnsafeArchiveError(
                f"{where}: network weights belong to a fitted DiVAE, and only to one."
            )
        if fitted_divae:
            est.module_ = self._module(est, node["weights"], where)
            check_divae_state(est, where)
            if "score_quantiles_" not in state and "_legacy_thresholds" not in state:
                # Saved by an older skdivae: its thresholds hold for these settings only.
                est._legacy_thresholds = (est.contamination, est.anomaly_score)
        else:
            check_fitted_shapes(est, where)
            check_fitted_values(est, where)
        return est

    def _module(self, est, index, where):
        from safetensors import SafetensorError
        from safetensors.torch import load as load_tensors

        if not isinstance(index, int) or not 0 <= index < len(self.weights):
            raise UnsafeArchiveError(f"{where}: weights {index!r} are missing.")
        if index in self.used_weights:  # each network is built once, from its own weights
            raise UnsafeArchiveError(f"{where}: weights {index} belong to another network.")
        self.used_weights.add(index)
        count_tensors(self.weights[index], where)  # from the header, before reading them
        try:
            tensors = load_tensors(self.weights[index])
        except (SafetensorError, ValueError) as exc:
            raise UnsafeArchiveError(f"{where}: unreadable weights ({exc}).") from exc
        check_architecture(est, tensors, where)
        odd = [name for name, t in tensors.items()
               if t.dtype not in (torch.float64, torch.float32)]
        if odd:  # load_state_dict would cast them silently: complex or integer values, or
            # half-precision ones that pass the size checks and grow four-fold in float64
            raise UnsafeArchiveError(f"{where}: weights must be float64 (as save writes them) "
                                     f"or float32, not {odd[:3]}.")
        bad = [name for name, t in tensors.items() if not bool(torch.isfinite(t).all())]
        if bad:
            raise UnsafeArchiveError(f"{where}: non-finite values in the weights {bad[:3]}.")
        try:
            module = rebuild_module(est, tensors)
        except UnsafeArchiveError as exc:
            raise UnsafeArchiveError(f"{where}: {exc}") from None
        try:
            module.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise UnsafeArchiveError(f"{where}: the weights do not fit the network ({exc}).") from exc
        return module.eval()


def rebuild_module(est, tensors=None):
    """A float64 network with the architecture of a fitted DiVAE.

    The network is first laid out on torch's ``meta`` device, which allocates nothing. With
    ``tensors`` (stored weights), every parameter's and buffer's name and shape must match
    them exactly before memory is allocated, so a tampered size cannot make the loader
    build a huge network; the allocated weights are then left for ``load_state_dict`` to
    fill. Without ``tensors`` the weights are freshly initialised (untrained)."""
    n_features = int(est.n_features_in_)
    settings = dict(
        n_features=n_features,
        density_dim=int(getattr(est, "density_dim_", est.n_components)),
        generator=torch.Generator().manual_seed(0),  # the builder draws only from it
    )
    if tensors is None:
        X_train = torch.zeros(max(2, est.n_components), n_features)
        return build_network(est, X_train=X_train, **settings).double()
    skeleton = network_skeleton(est, n_features=n_features, density_dim=settings["density_dim"])
    expected, stored = tensor_shapes(skeleton.state_dict()), tensor_shapes(tensors)
    if expected != stored:
        wrong = sorted(set(expected) ^ set(stored)) or sorted(
            name for name in expected if expected[name] != stored[name]
        )
        raise UnsafeArchiveError(
            f"the weights do not fit the network described by the parameters ({wrong[:3]}; "
            f"the parameters as read say prior={est.prior!r}, n_components={est.n_components!r}"
            "; a file of format version 1-3 without a prior is read as prior='normal')."
        )
    return skeleton.to_empty(device="cpu").double()


def load(path):
    """Load an estimator saved by :func:`save`, running nothing from the file.

    Parameters
    ----------
    path : str, bytes or path-like

    Returns
    -------
    estimator
        The fitted estimator; it gives bit-identical scores to the one saved,
        with one exception: a fitted array that is a view with gaps between its
        rows or columns (``PCA(svd_solver="randomized")``'s ``components_`` is
        one) loads without them, and matrix products over it may then differ in
        the last bits (about 1e-15).
        An ``n_jobs`` above this machine's CPU count is lowered to it (a file
        cannot make joblib start more workers than there are CPUs; DiVAE's
        ``n_threads`` is bounded the same way when it is used).

    Raises
    ------
    UnsafeArchiveError
        (a ``ValueError``) if the file is not a skdivae archive, has another
        format version, names a type outside :data:`SUPPORTED`, holds pickled
        data, lacks an array, or its weights do not fit the network.

    See Also
    --------
    save : Write an archive.
    """
    path = Path(os.fsdecode(os.fspath(path)))
    if not path.is_file():  # not a device or a FIFO, which would be read without end
        raise UnsafeArchiveError(f"{path} is not a regular file.")
    if not zipfile.is_zipfile(path):
        raise UnsafeArchiveError(f"{path} is not a skdivae archive (not a zip file).")
    try:
        return _load(path)
    except UnsafeArchiveError:
        raise
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, RuntimeError,
            NotImplementedError,
            RecursionError, MemoryError, OSError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, OverflowError) as exc:
        raise UnsafeArchiveError(f"{path}: unreadable archive ({type(exc).__name__}: {exc}).") from exc


def _load(path):
    cap = inflate_cap(path.stat().st_size)
    with zipfile.ZipFile(path) as zf:
        check_compression(zf, path)
        declared = sum(info.file_size for info in zf.infolist())
        if declared > cap:
            raise UnsafeArchiveError(
                f"{path}: its members would inflate to {declared} bytes, more than the "
                f"{cap} this {path.stat().st_size}-byte file may hold (see inflate_cap)."
            )
        listed = zf.namelist()
        names = set(listed)
        if len(names) != len(listed):
            raise UnsafeArchiveError(f"{path}: the archive holds duplicate members.")
        absent = [m for m in (MANIFEST, ARRAYS) if m not in names]
        if absent:
            raise UnsafeArchiveError(
                f"{path} is not a skdivae archive ({' and '.join(absent)} missing).")
        if zf.getinfo(MANIFEST).file_size > MAX_MANIFEST_BYTES:
            raise UnsafeArchiveError(
                f"{path}: {MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes (arrays belong in "
                f"{ARRAYS})."
            )
        try:
            manifest = json.loads(read_member(zf, MANIFEST), object_pairs_hook=unique_keys)
        except ValueError as exc:
            raise UnsafeArchiveError(f"{path}: {MANIFEST} is not valid JSON ({exc}).") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise UnsafeArchiveError(f"{path} is not a skdivae archive (format field).")
        version = manifest.get("format_version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise UnsafeArchiveError(
                f"{path} has format version {version!r}; this skdivae reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}."
            )
        raw_arrays = read_member(zf, ARRAYS)
        check_inner_sizes(raw_arrays, cap, path, ARRAYS)
        try:
            npz = np.load(io.BytesIO(raw_arrays), allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise UnsafeArchiveError(f"{path}: {ARRAYS} is not an .npz archive.")
            with npz:
                arrays = {k: npz[k] for k in npz.files}
        except ValueError as exc:
            raise UnsafeArchiveError(f"{path}: {ARRAYS} holds pickled or unreadable data ({exc}).") from exc
        n_weights = manifest.get("n_weights", 0)
        if not isinstance(n_weights, int) or n_weights < 0:
            raise UnsafeArchiveError(f"{path}: malformed n_weights.")
        weights = []
        for i in range(n_weights):
            member = f"weights/{i}.safetensors"
            if member not in names:
                raise UnsafeArchiveError(f"{path}: {member} is missing.")
            weights.append(read_member(zf, member))
    root = manifest.get("root")
    if not isinstance(root, dict) or root.get("__type__") != "estimator":
        raise UnsafeArchiveError(f"{path}: the archive's root is not an estimator.")
    # (an item size of 0, as in '<U0', would let any number of elements pass the size caps)
    bad = [k for k, a in arrays.items()
           if a.dtype.hasobject or a.dtype.kind not in "biufU" or a.dtype.itemsize == 0]
    if bad:
        raise UnsafeArchiveError(
            f"{path}: arrays of dtype {arrays[bad[0]].dtype} are not allowed ({bad[0]!r})."
        )
    reader = _Reader(arrays, weights, version)
    est = reader.decode(root, "estimator")
    unused = sorted(set(arrays) - reader.used_arrays)
    if unused:
        raise UnsafeArchiveError(f"{path}: {ARRAYS} holds arrays nothing uses ({unused[:3]}).")
    return est
