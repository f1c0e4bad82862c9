"""Load one run's checkpoint of the authors' code and dump what our metrics need (our code).

Run with the *authors'* Python (their venv), by ``run_authors.py``, which then computes the
metrics from the dumped arrays with the project's own formulas. Written to ``--out`` (.npz):

- ``X_val``: the validation points (their data, regenerated with ``GMMSynth`` at the run's
  sizes and ``--gmm-seed``: train is drawn first, then val, from one generator, so val
  depends on ``n_train`` too), and ``rotation``: their rotation ``R`` (``X = [x2d, pad] @
  R.T``, the convention of ``RotatedGaussianMixture.rotation_``), both as float64;
- ``oracle_logpdf_2d``: their own true 2-D log-density of those points (a cross-check);
- ``log_prior_mu``: ``log p_Z(mu(x))`` of the validation points, the prior at the encoder
  mean, as ``paper_synthetic.py`` scores it;
- ``means``, ``scales``: the true 2-D mixture (uniform weights);
- ``u``, ``log_pz_u``: ``kl_draws`` draws of the true mixture in plane coordinates, drawn
  with ``numpy.random.default_rng(10_000 + seed)`` exactly as ``paper_synthetic.prior_kl``
  draws them, and their log-density under the learned prior.

Usage::

    <their python> benchmarks/reference/_authors_recompute.py --checkout DiVAE-EurIPS \\
        --ckpt RUN/version_0/checkpoints/epoch=29-step=1200.ckpt --gmm-k 8 --gmm-dim 50 \\
        --gmm-seed 6032000 --n-train 5000 --n-val 2000 --seed 1 --out metrics.npz
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _authors_train import import_torchvision  # noqa: E402


def alias_flow_base(Model):
    """Their training step makes the learned prior the flow's base distribution
    (``self.module.aligner.flow.base_dist = self.module.prior``), so a flow run's checkpoint
    holds the prior twice, once under ``module.aligner.flow.base_dist.*``; a fresh model
    does not have that alias and ``load_from_checkpoint`` fails ("Unexpected key(s)").
    Make the same alias when a checkpoint is loaded, before its state is read."""
    original = Model.on_load_checkpoint

    def on_load_checkpoint(self, checkpoint):
        original(self, checkpoint)
        aligner = getattr(self.module, "aligner", None)
        if any(k.startswith("module.aligner.flow.base_dist.") for k in checkpoint["state_dict"]):
            aligner.flow.base_dist = self.module.prior

    Model.on_load_checkpoint = on_load_checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", required=True)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--gmm-k", type=int, required=True)
    parser.add_argument("--gmm-dim", type=int, required=True)
    parser.add_argument("--gmm-seed", type=int, required=True)
    parser.add_argument("--n-train", type=int, required=True)
    parser.add_argument("--n-val", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True, help="the run's seed (KL draws)")
    parser.add_argument("--kl-draws", type=int, default=20_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import_torchvision()
    sys.path.insert(0, os.path.abspath(args.checkout))
    import numpy as np
    import torch

    from drvae.datamodules.gmm_synthetic import GMMSynth
    from drvae.model import Model

    torch.set_num_threads(1)
    alias_flow_base(Model)
    model = Model.load_from_checkpoint(args.ckpt, map_location="cpu")
    model.eval()
    vae = model.module
    vae.eval()

    synth = GMMSynth(n_train=args.n_train, n_val=args.n_val, dim=args.gmm_dim, k=args.gmm_k,
                     seed=args.gmm_seed, pad_sigma=0.02)
    val = synth.get_dataset("val")
    X = val.X
    base = synth.gmm2d.mixture.component_distribution.base_dist
    means = base.loc.double().numpy()
    scales = base.scale.double().numpy()

    rng = np.random.default_rng(10_000 + args.seed)
    labels = rng.integers(args.gmm_k, size=args.kl_draws)
    u = means[labels] + scales[labels] * rng.normal(size=(args.kl_draws, 2))

    with torch.no_grad():
        oracle = val.oracle_logpdf_2d(X).double().numpy()
        qz = vae.encode(X.view(len(X), 1, 1, -1))
        log_prior_mu = vae.prior.log_prob(qz.loc).double().numpy()
        log_pz_u = vae.prior.log_prob(torch.from_numpy(u).float()).double().numpy()

    np.savez(args.out, X_val=X.double().numpy(), rotation=synth.rot.R.double().numpy(),
             oracle_logpdf_2d=oracle, log_prior_mu=log_prior_mu,
             means=means, scales=scales, u=u, log_pz_u=log_pz_u)
    print(f"[recompute] {args.ckpt} -> {args.out}: mean log p_Z(mu) {log_prior_mu.mean():.6f}, "
          f"mean true log-density {oracle.mean():.6f}", flush=True)


if __name__ == "__main__":
    main()
