"""Run the authors' ``scripts/exp_synthetic_runner.py`` at chosen data sizes (our wrapper).

Run with the *authors'* Python (their venv), by ``run_authors.py``; nothing of theirs is
copied here, their files are never edited: the checkout is put on ``sys.path`` and patched
in memory.

- ``import_torchvision()``: PyPI's torchvision 0.28.0 is a CUDA build; beside a CPU-only
  torch its ``_C`` extension cannot load and ``import torchvision`` dies in
  ``_meta_registrations`` ("operator torchvision::nms does not exist"). Their code and
  pytorch_lightning import it at module level but use no torchvision op on the synthetic
  path, so when the plain import fails we define the two op schemas torchvision registers
  fake kernels for (``nms``, ``qnms``) and import it again.
- The runner hard-codes ``gmm_train=60000, gmm_val=10000`` and
  ``data_path=os.path.expanduser("~/datasets/")`` (which must exist even for synthetic
  data). ``VAEDataModule.__init__`` (the class object the runner imports) is wrapped so that
  ``--n-train``, ``--n-val`` and ``--data-dir`` replace them.

Usage (the arguments after ``--`` go to their runner unchanged)::

    <their python> benchmarks/reference/_authors_train.py --checkout DiVAE-EurIPS \\
        --n-train 5000 --n-val 2000 --data-dir SCRATCH/datasets -- \\
        --prior standard --density-reg --aligner direct --external-density dpa \\
        --gmm-k 8 --gmm-dim 50 --gmm-seed 6032000 --seed 1 --epochs 30 --log-root LOGS
"""

import argparse
import importlib
import os
import runpy
import sys


def import_torchvision():
    """Import torchvision, defining its two fake-kernel op schemas first if a CPU torch
    cannot load its (CUDA) extension; returns ``"plain"`` or ``"shimmed"``."""
    try:
        importlib.import_module("torchvision")
        return "plain"
    except RuntimeError:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        import torch

        lib = torch.library.Library("torchvision", "DEF")
        schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
        lib.define("nms" + schema)
        lib.define("qnms" + schema)
        import_torchvision.library = lib  # the definitions live as long as this object
        importlib.import_module("torchvision")
        return "shimmed"


def patch_data_module(checkout, n_train, n_val, data_dir):
    """Make the authors' ``VAEDataModule`` use our sizes and data folder."""
    if checkout not in sys.path:
        sys.path.insert(0, checkout)  # the runner inserts the same absolute path
    import drvae.datamodules.datamodule as datamodule

    original_init = datamodule.VAEDataModule.__init__

    def init(self, data_path=None, dataset="mnist", batch_size=128, subset_size=None, **kwargs):
        if str(dataset).lower() == "gmmrot":
            kwargs["gmm_train"] = n_train
            kwargs["gmm_val"] = n_val
        original_init(self, data_path=data_dir, dataset=dataset, batch_size=batch_size,
                      subset_size=subset_size, **kwargs)

    datamodule.VAEDataModule.__init__ = init


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", required=True, help="the DiVAE-EurIPS work tree")
    parser.add_argument("--n-train", type=int, required=True)
    parser.add_argument("--n-val", type=int, required=True)
    parser.add_argument("--data-dir", required=True, help="replaces ~/datasets/ (created)")
    parser.add_argument("--runner", default="scripts/exp_synthetic_runner.py")
    args, rest = parser.parse_known_args()
    if rest and rest[0] == "--":
        rest = rest[1:]
    checkout = os.path.abspath(args.checkout)
    data_dir = os.path.abspath(args.data_dir)
    os.makedirs(data_dir, exist_ok=True)
    print(f"[wrapper] torchvision import: {import_torchvision()}", flush=True)
    patch_data_module(checkout, args.n_train, args.n_val, data_dir)
    print(f"[wrapper] n_train={args.n_train} n_val={args.n_val} data_dir={data_dir}", flush=True)
    runner = os.path.join(checkout, args.runner)
    sys.argv = [runner] + rest
    runpy.run_path(runner, run_name="__main__")


if __name__ == "__main__":
    main()
