"""Sampling throughput on this machine: fdrl-jax against the authors' PyTorch sampler, same net.

    python benchmarks/sampling_throughput.py [--configs=cifar10,celeba64,church128,cat2dog]
        [--batch=500] [--steps=2] [--authors_code=PATH/TO/clear-nus/fdrl] [--threads=0|1]

For each image config: its estimator (its own spectral-norm setting), random weights, the
same weights copied into the PyTorch net of the reference's layout
(`fdrl_jax/interop/reference_nets.py`). One flow of the config's K + κ steps on a batch of
--batch images is what Algorithm 2 runs per batch; both sides are timed over --steps flow
steps (after a warm-up call that compiles the JAX program: its flow length is a run-time
value, so the same program serves every length), and images/s for the K + κ flow is
batch / (seconds per step × (K + κ)). The JAX side is the package's flow
(`flows.flow` over `make_potential`, what `algorithms.sample` runs after the prior draw).
The PyTorch side is the authors' `flow` function (`src/model_utils.py`) when --authors_code
names a checkout of their repository, else the same loop written here (autograd.grad of the
summed f' with respect to x, then an in-place Euler–Maruyama update); their sampling script
leaves the net in training mode, so spectral norm runs its power iteration at every step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if "--threads=1" in sys.argv:  # before JAX starts: XLA single-threaded too
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    ).strip()

import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax import compilation, configlib, divergences, flows
from fdrl_jax.models import build_model, converge_spectral_norms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# our divergence names -> the authors' `f_divergence` names
AUTHORS_NAMES = {"chi2": "Pearson", "kl": "KL", "js": "JS", "logd": "logD"}


def _own_torch_flow(torch):
    logsigmoid = torch.nn.functional.logsigmoid
    fprimes = {  # f'(net output), up to constants the gradient drops
        "Pearson": lambda o: 2 * o,
        "KL": lambda o: o,
        "JS": logsigmoid,
        "logD": lambda o: -logsigmoid(-o),
    }

    def flow(x, model, steps, eta, noise_factor, f_divergence):
        x = x.clone()
        for _ in range(steps):
            y = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(fprimes[f_divergence](model(y)).sum(), [y])
            x = x - eta * g - noise_factor * torch.randn_like(x)
        return x.detach()

    return flow


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--configs", default="cifar10,celeba64,church128,cat2dog")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--authors_code", default="", help="a checkout of clear-nus/fdrl")
    p.add_argument(
        "--threads", type=int, default=0, help="1: both single-threaded (0: their defaults)"
    )
    a = p.parse_args()
    import torch

    from fdrl_jax.interop import reference_nets, state_dict

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.authors_code:
        sys.path.insert(0, a.authors_code)
        from src.model_utils import flow as torch_flow  # the authors' sampler

        which = f"the authors' flow ({a.authors_code}/src/model_utils.py)"
    else:
        torch_flow, which = _own_torch_flow(torch), "the same loop written here"
    print(
        f"batch {a.batch}, {a.steps} timed flow steps per side; jax {jax.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), {which}, "
        f"{os.cpu_count()} cores"
    )
    print("| config | K + κ | spectral norm | fdrl-jax s/step | PyTorch s/step | "
          "fdrl-jax images/s | PyTorch images/s | fdrl-jax speed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in a.configs.split(","):
        c = configlib.load_config(os.path.join(ROOT, "configs", f"{name}.py"))
        size, ch = c.data.size, c.data.channels or 3
        net = build_model(c.model)
        sn = bool(net._spec().get("spectral_norm"))
        shape = (size, size, ch)
        v = converge_spectral_norms(dict(net.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))))
        x0 = np.random.default_rng(0).uniform(-1, 1, (a.batch, *shape)).astype(np.float32)
        eta, nu, total = c.flow.eta, c.flow.nu, c.flow.num_steps + c.flow.kappa
        fprime = divergences.get_fprime(c.divergence)
        flow = jax.jit(
            lambda v, x, key, n, net=net, fprime=fprime, eta=eta, nu=nu: flows.flow(
                flows.make_potential(net.apply, v, fprime), x, key, n, eta, nu
            ),
            compiler_options=compilation.compiler_options(net),  # as the package's sampler
        )
        key = jax.random.PRNGKey(1)
        flow(v, x0, key, np.int32(1)).block_until_ready()  # compiles
        t = time.perf_counter()
        flow(v, x0, key, np.int32(a.steps)).block_until_ready()
        jax_s = (time.perf_counter() - t) / a.steps

        tnet = reference_nets.build_reference_net(c.model, shape)
        sd = state_dict.to_state_dict(jax.tree.map(np.asarray, v))
        tnet.load_state_dict(
            {k: torch.from_numpy(np.array(w)) for k, w in sd.items()}, strict=False
        )
        xt = torch.from_numpy(np.ascontiguousarray(np.transpose(x0, (0, 3, 1, 2))))
        div = AUTHORS_NAMES[c.divergence]
        torch_flow(xt[:2], tnet, 1, eta, nu, div)  # warm-up
        t = time.perf_counter()
        torch_flow(xt, tnet, a.steps, eta, nu, div)
        torch_s = (time.perf_counter() - t) / a.steps
        ips = [a.batch / (s * total) for s in (jax_s, torch_s)]
        print(
            f"| {name} | {total} | {'on' if sn else 'off'} | {jax_s:.2f} | {torch_s:.2f} | "
            f"{ips[0]:.2f} | {ips[1]:.2f} | {torch_s / jax_s:.2f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
