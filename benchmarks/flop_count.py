"""FLOPs of one training iteration of an image config, from XLA's cost analysis (no timing).

    python benchmarks/flop_count.py [--config=configs/cifar10.py[:arg]] [--batch=64]

Counts, on whatever device JAX finds (the count is of the program, not of the device): the
estimator's forward pass on the batch, one flow step (forward and input gradient on the batch),
and one loss step (forward and parameter gradient on the 2 × batch of flowed particles and
data). XLA does not multiply a loop body by its trip count, so a K-step flow is reported as
K × one flow step; an iteration is that plus one loss step (the optimiser and EMA updates are
elementwise and negligible). Data are `synthetic` images of the config's size (and a dataset
prior, cat2dog's, a Gaussian).
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp

from fdrl_jax import configlib, flows, trainer
from fdrl_jax.experiment import build_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/cifar10.py")
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    c = configlib.load_config(os.path.join(ROOT, a.config))
    c.data.name, c.data.synthetic_count = "synthetic", 16
    c.prior.form, c.prior.rank = "lowrank", 8  # the prior does not enter the counted pieces
    if c.prior.name == "dataset":  # cat2dog: no source images needed to count
        c.prior.name = "gaussian"
    c.train.batch_size = a.batch
    exp = build_experiment(c)
    state = trainer.initial_state(exp)
    variables, b, k = state.variables, a.batch, c.flow.num_steps
    x = jnp.zeros((b, *exp.shape), jnp.float32)
    potential = flows.make_potential(exp.apply_fn, variables, exp.fprime)

    def loss_grad(params, xq, xp):
        def loss(p):
            out = exp.apply_fn({"params": p, **state.stats}, jnp.concatenate([xq, xp]))
            return exp.loss_fn(out[:b], out[b:])

        return jax.grad(loss)(params)

    fwd = flops(lambda x: exp.apply_fn(variables, x), x)
    step = flops(lambda x: flows.flow_step(potential, x, jax.random.PRNGKey(0), 1.0, 0.0), x)
    loss = flops(loss_grad, variables["params"], x, x)
    sn = c.model.spectral_norm
    print(
        f"{a.config}, model {c.model.name}/{c.model.arch or '-'} (spectral norm "
        f"{'arch default' if sn is None else sn}), batch {b}, K = {k}, on {jax.devices()[0]}"
    )
    for name, v in (
        ("forward (batch)", fwd),
        ("one flow step: forward + input gradient (batch)", step),
        ("loss step: forward + parameter gradient (2 × batch)", loss),
        (f"training iteration: {k} flow steps + loss step", k * step + loss),
    ):
        print(f"  {name:<52} {v / 1e12:8.4f} TFLOP")


if __name__ == "__main__":
    main()
