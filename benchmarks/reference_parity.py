"""Our estimators (paper Table 3) against the same networks in PyTorch (the reference's layout).

For each net: parameter counts; with the torch net's weights copied into ours, the relative
error of the outputs and of the input gradient of their sum; and at a fresh initialisation of
each (its own default init, several seeds), the mean input-gradient norm per image, which sets
how far the first flow steps move the particles (η·∇ₓf'(r)).

    python benchmarks/reference_parity.py [--param_init=torch|flax] [--batch=4] [--seeds=3]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import torch

from fdrl_jax.interop import reference_nets, state_dict
from fdrl_jax.models import ResNetEstimator, converge_spectral_norms

NETS = [  # (arch, image size, spectral norm)
    ("cifar10", 32, False),
    ("cifar10", 32, True),
    ("celeba64", 64, False),
    ("church128", 128, False),
    ("cat2dog", 64, False),
    ("cat2dog", 64, True),
]


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def exact_singular_vectors(net: torch.nn.Module) -> None:
    """Set every torch spectral norm's u, v to the exact top singular vectors (converged)."""
    for module in net.modules():
        if hasattr(module, "weight_orig"):
            w = module.weight_orig.detach().reshape(module.weight_orig.shape[0], -1)
            u, _, vh = torch.linalg.svd(w.double(), full_matrices=False)
            module.weight_u.copy_(u[:, 0].float())
            module.weight_v.copy_(vh[0].float())


def measure(arch: str, size: int, sn: bool, args) -> str:
    """One table row."""
    cfg = ml_collections.ConfigDict(
        {
            "name": "resnet",
            "arch": arch,
            "stem": None,
            "stages": None,
            "attention_after": None,
            "spectral_norm": sn,
        }
    )
    ours = ResNetEstimator(arch=arch, spectral_norm=sn, param_init=args.param_init)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (args.batch, size, size, 3)).astype(np.float32)
    xt = torch.tensor(np.transpose(x, (0, 3, 1, 2)), requires_grad=True)

    def our_grad(variables):
        f = lambda z: jnp.sum(ours.apply(variables, z))  # noqa: E731
        return ours.apply(variables, jnp.asarray(x)), jax.grad(f)(jnp.asarray(x))

    torch.manual_seed(0)
    ref = reference_nets.build_reference_net(cfg, (size, size, 3))
    if sn:
        exact_singular_vectors(ref)
    ref.eval()  # spectral norm uses its stored vectors, as ours do inside a flow
    out_t = ref(xt)
    (g_t,) = torch.autograd.grad(out_t.sum(), xt)
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    template = jax.eval_shape(lambda: ours.init(jax.random.PRNGKey(0), jnp.asarray(x[:1])))
    variables = state_dict.from_state_dict(sd, template)
    out_o, g_o = our_grad(variables)
    n_ref = sum(v.numel() for k, v in ref.state_dict().items() if not k.endswith(("_u", "_v")))
    n_ours = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(template["params"]))
    e_out = rel(out_o, out_t.detach().numpy())
    e_grad = rel(g_o, np.transpose(g_t.numpy(), (0, 2, 3, 1)))

    norms_t, norms_o = [], []
    for seed in range(args.seeds):
        torch.manual_seed(seed + 1)
        fresh = reference_nets.build_reference_net(cfg, (size, size, 3))
        if sn:
            exact_singular_vectors(fresh)
        fresh.eval()
        xt2 = torch.tensor(np.transpose(x, (0, 3, 1, 2)), requires_grad=True)
        (g,) = torch.autograd.grad(fresh(xt2).sum(), xt2)
        norms_t.append(float(g.flatten(1).norm(dim=1).mean()))
        v = converge_spectral_norms(
            dict(ours.init(jax.random.PRNGKey(seed + 1), jnp.asarray(x[:1])))
        )
        _, g = our_grad(v)
        norms_o.append(float(jnp.mean(jnp.linalg.norm(g.reshape(len(x), -1), axis=1))))
    nt, no = float(np.mean(norms_t)), float(np.mean(norms_o))
    name = f"{arch} (SN {'on' if sn else 'off'})"
    return (
        f"| {name} | {n_ref:,} / {n_ours:,} | {e_out:.1e} | {e_grad:.1e} | "
        f"{nt:.4f} / {no:.4f} ({no / nt:.2f}×) |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--param_init", default="torch", choices=["torch", "flax"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    torch.set_grad_enabled(True)
    print(
        "| net | params (torch / ours) | output rel. error, same weights | input-gradient rel. "
        "error, same weights | input-gradient norm at a fresh init (torch / ours) |"
    )
    print("|---|---|---|---|---|")
    for arch, size, sn in NETS:
        print(measure(arch, size, sn, args), flush=True)


if __name__ == "__main__":
    main()
