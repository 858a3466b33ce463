"""What applying the spectral norms once per flow saves against a power iteration per step.

    python benchmarks/spectral_norm_cost.py [--arch=cifar10] [--batch=8] [--cost_batch=64]
        [--flow_steps=5] [--repeats=5] [--K=100]

The SN-on estimator of `--arch`, flows with the same weights and noise: "per step" calls the
net with its power-iteration state at every step (flax's SpectralNorm with update_stats=False,
what the flow did before); "once" takes its potential from `flows.make_potential`, which
divides the kernels by σ once before the loop (`apply_spectral_norms`). Prints ms per flow
step on this machine (a --flow_steps loop at --batch, median of --repeats after the compiling
call, the two interleaved), FLOPs and bytes of one flow step at --cost_batch from XLA's cost
analysis of the direct convolutions (`conv_grad="xla"`, what a GPU runs; × --K), and the
largest difference between the flows' samples.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax import divergences, flows
from fdrl_jax.models import ResNetEstimator, apply_spectral_norms, converge_spectral_norms

ETA, NU = 3.0, 0.01


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="cifar10")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--cost_batch", type=int, default=64)
    p.add_argument("--flow_steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--K", type=int, default=100)
    a = p.parse_args()
    net = ResNetEstimator(a.arch, spectral_norm=True)
    shape = (a.size, a.size, 3)
    v = converge_spectral_norms(dict(net.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))))
    fprime = divergences.chi2_fprime

    potentials = {
        "per step": lambda v: lambda x: fprime(net.apply(v, x)),
        "once": lambda v: flows.make_potential(net.apply, v, fprime),
    }
    x0 = jax.random.uniform(jax.random.PRNGKey(1), (a.batch, *shape), minval=-1, maxval=1)
    key = jax.random.PRNGKey(2)
    programs, out = {}, {}
    for name, make in potentials.items():
        programs[name] = jax.jit(
            lambda v, x, make=make: flows.flow(make(v), x, key, a.flow_steps, ETA, NU)
        )
        out[name] = np.asarray(programs[name](v, x0))  # compiles
    times = {name: [] for name in programs}
    for _ in range(a.repeats):
        for name, f in programs.items():
            t = time.perf_counter()
            f(v, x0).block_until_ready()
            times[name].append(time.perf_counter() - t)
    ms = {k: 1e3 * statistics.median(t) / a.flow_steps for k, t in times.items()}
    print(f"{a.arch}, SN on, {jax.devices()[0].device_kind}; batch {a.batch}:")
    for name in programs:
        print(f"  ms per flow step, {name:<9} {ms[name]:8.1f}")
    print(f"  saved per flow step: {ms['per step'] - ms['once']:.1f} ms")
    diff = np.abs(out["per step"] - out["once"]).max()
    print(f"  largest |difference| of the samples after {a.flow_steps} steps: {diff:.1e}")

    xc = jnp.zeros((a.cost_batch, *shape))
    direct = net.clone(conv_grad="xla")
    applied = apply_spectral_norms(v)
    cost = {}
    for name, variables in {"per step": v, "once": applied}.items():

        def step(variables, x):
            return flows.flow_step(lambda y: fprime(direct.apply(variables, y)), x, key, ETA, NU)

        c = jax.jit(step).lower(variables, xc).compile().cost_analysis()
        c = c[0] if isinstance(c, list) else c
        cost[name] = (c["flops"], c["bytes accessed"])
    once_cost = jax.jit(apply_spectral_norms).lower(v).compile().cost_analysis()
    once_cost = once_cost[0] if isinstance(once_cost, list) else once_cost
    print(f"one flow step at batch {a.cost_batch}, XLA cost analysis:")
    for name, (fl, by) in cost.items():
        print(f"  SN {name:<9} {fl / 1e9:10.2f} GFLOP {by / 1e9:8.3f} GB")
    dfl, dby = (cost["per step"][i] - cost["once"][i] for i in range(2))
    print(
        f"  saved per step: {dfl / 1e9:.3f} GFLOP, {dby / 1e9:.3f} GB; at K = {a.K}: "
        f"{a.K * dfl / 1e9:.1f} GFLOP and {a.K * dby / 1e9:.2f} GB per flow, for one "
        f"normalisation of {once_cost['flops'] / 1e9:.3f} GFLOP, "
        f"{once_cost['bytes accessed'] / 1e9:.3f} GB"
    )


if __name__ == "__main__":
    main()
