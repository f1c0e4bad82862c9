"""The skdivae archive format: saving and loading fitted estimators without pickle.

An archive is a zip file with three kinds of member:

* ``skdivae.json``: the format name and version and a tree that describes
  every object: estimators by class name, their ``__init__`` parameters and
  their fitted attributes; plain values as JSON;
* ``arrays.npz``: every numeric array, read back with ``allow_pickle=False``;
* ``weights/<i>.safetensors``: the torch weights of each DiVAE.

Loading never imports a name read from the file: classes come from a fixed
table (:data:`SUPPORTED`), instances are made by calling their ``__init__``
(which only assigns, by scikit-learn's convention) and setting attributes, a
DiVAE's network is rebuilt from its parameters and its weights are loaded
strictly. Nothing in an archive is executed.

What an archive is (this module: its names, versions and the classes it may hold);
``_archive_writer`` writes one (:func:`save`), ``_archive_reader`` reads one back
(:func:`load`) and ``_archive_checks`` holds what a loaded archive must satisfy.
"""

from sklearn.decomposition import PCA
from sklearn.feature_selection import VarianceThreshold
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from ._divae import DiVAE
from ._knn_density import KNNLogDensity
from .aligners import DirectAligner, FlowAligner
from .priors import GaussianMixturePrior, StandardNormalPrior, VampPrior

FORMAT = "skdivae"
FORMAT_VERSION = 5
#: Versions this loader reads. Version 1 predates the priors' ``kl`` setting: its mixture
#: priors were trained and scored with the 50-draw Monte Carlo KL, and load that way.
#: Versions 1 and 2 predate ``GaussianMixturePrior(n_components="auto")``: there,
#: ``prior="gmm"`` meant 10 components in every latent size, and loads that way.
#: Versions 1 to 3 predate ``DiVAE(prior="auto")``, the default since version 4: an
#: older reader would refuse ``"auto"``, and an older file without ``prior`` meant
#: ``"normal"``, and loads that way.
#: Versions 1 to 4 predate ``DirectAligner(per_feature="auto", delta="auto")`` and the
#: prior-dependent ``reduction="auto"``: with a fixed N(0, I) prior in a latent space of one
#: or two dimensions their default aligner meant ``DirectAligner(per_feature=False,
#: reduction="sqrt", delta=1.0)``, and loads that way (so ``partial_fit`` goes on training
#: as the model was trained).
READABLE_VERSIONS = (1, 2, 3, 4, 5)
MANIFEST = "skdivae.json"
#: Deepest nesting of entries a loaded archive may have.
MAX_DEPTH = 64
ARRAYS = "arrays.npz"

#: The classes an archive may hold, by the name written into it.
SUPPORTED = {
    f"{cls.__module__.split('.')[0]}.{cls.__name__}": cls
    for cls in (
        DiVAE,
        KNNLogDensity,
        StandardNormalPrior,
        GaussianMixturePrior,
        VampPrior,
        DirectAligner,
        FlowAligner,
        Pipeline,
        StandardScaler,
        MinMaxScaler,
        RobustScaler,
        MaxAbsScaler,
        VarianceThreshold,
        PCA,
        GaussianMixture,
        NearestNeighbors,
    )
}
#: The name written into an archive for each supported class.
NAMES = {cls: name for name, cls in SUPPORTED.items()}
