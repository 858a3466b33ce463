"""Speed of the training iteration and of sampling for each image config.

    python benchmarks/speed.py [--configs=cifar10,cifar10-nosn,celeba64,church128,cat2dog]
        [--precision=float32,bfloat16] [--batch=64] [--repeats=5] [--sample_n=50000]
    python benchmarks/speed.py --smoke     # seconds on a CPU: checks the script, not the speed

For each config: ms per training iteration (prior draw + K-step flow + loss + Adam + EMA, one
compiled program, state donated; median of --repeats after a warm-up, device synchronised),
flow steps/s (one flow of K steps on the batch), sampling throughput (K + κ steps, batches of
--sample_batch), and achieved TFLOP/s as a fraction of a measured bf16 matmul peak.

FLOPs are counted by XLA's cost analysis of the loop-free pieces — one flow step (forward and
input gradient on the batch) and one loss + Adam step (forward and parameter gradient on 2×batch)
— as K × flow step + loss step; XLA does not multiply a scan body by its trip count, so the
compiled iteration itself cannot be asked. Data are `synthetic` images of the config's size (no
TensorFlow needed; the data draw is a device-side gather either way).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp

from fdrl_jax import configlib, flows, trainer
from fdrl_jax.experiment import build_experiment
from fdrl_jax.sampler import Sampler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {  # name -> (config file, overrides)
    "cifar10": ("cifar10.py", {}),
    "cifar10-nosn": ("cifar10.py", {"model.spectral_norm": False}),
    "celeba64": ("celeba64.py", {}),
    "church128": ("church128.py", {}),
    "cat2dog": ("cat2dog.py", {}),
}


def _config(name: str, precision: str, batch: int, smoke: bool):
    path, overrides = CONFIGS[name]
    c = configlib.load_config(os.path.join(ROOT, "configs", path) + (":smoke" if smoke else ""))
    c.data.name, c.data.synthetic_count = "synthetic", 256
    c.data.size = c.data.size or 64
    c.data.channels = c.data.channels or 3
    c.prior.form, c.prior.rank = "lowrank", 64  # the prior's form does not change the step
    c.train.precision = precision
    if not smoke:
        c.train.batch_size = batch
    return configlib.override(c, overrides)


def _timed(fn, repeats: int) -> float:
    """Median seconds of fn() (which must block), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


def matmul_peak_tflops(n: int = 8192, repeats: int = 10) -> float:
    """Measured bf16 matmul throughput (the denominator of the utilisation figures)."""
    a = jnp.ones((n, n), jnp.bfloat16)
    f = jax.jit(lambda x: x @ x)
    sec = _timed(lambda: f(a).block_until_ready(), repeats)
    return 2 * n**3 / sec / 1e12


def bench(name: str, precision: str, a) -> dict:
    c = _config(name, precision, a.batch, a.smoke)
    exp = build_experiment(c)
    step_fn = trainer.make_train_step(exp)
    state = trainer.initial_state(exp)
    holder = {"s": state}

    def one_iteration():
        holder["s"], m = step_fn(holder["s"], exp.data)
        jax.block_until_ready(m["loss"])

    iter_s = _timed(one_iteration, a.repeats)
    b, k = c.train.batch_size, c.flow.num_steps
    variables = holder["s"].variables
    x = exp.prior.sample(jax.random.PRNGKey(0), b)
    potential = flows.make_potential(exp.apply_fn, variables, exp.fprime)
    flow = jax.jit(lambda x0, key: flows.flow(potential, x0, key, k, c.flow.eta, c.flow.nu))
    flow_s = _timed(lambda: flow(x, jax.random.PRNGKey(1)).block_until_ready(), a.repeats)

    def flow_step(x0):
        return flows.flow_step(potential, x0, jax.random.PRNGKey(0), c.flow.eta, c.flow.nu)

    def loss_step(params, xq, xp):
        def loss(p):
            out = exp.apply_fn({"params": p, **holder["s"].stats}, jnp.concatenate([xq, xp]))
            return exp.loss_fn(out[:b], out[b:])

        return jax.grad(loss)(params)

    flops = k * _flops(flow_step, x) + _flops(loss_step, variables["params"], x, x)

    n_sample, sb, steps = a.sample_n, a.sample_batch, k + c.flow.kappa
    sampler = Sampler(exp, num_steps=steps)
    sampler(holder["s"].ema_variables, jax.random.PRNGKey(2), sb).block_until_ready()  # warm
    t = time.perf_counter()
    sampler.sample_many(holder["s"].ema_variables, jax.random.PRNGKey(3), n_sample, sb)
    sample_s = time.perf_counter() - t
    return {
        "config": name,
        "precision": precision,
        "batch": b,
        "K": k,
        "ms_per_iteration": 1e3 * iter_s,
        "flow_steps_per_s": k / flow_s,
        "tflop_per_iteration": flops / 1e12,
        "achieved_tflops": flops / iter_s / 1e12,
        "samples": n_sample,
        "sample_steps": steps,
        "sample_seconds": sample_s,
        "samples_per_s": n_sample / sample_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--precision", default="float32,bfloat16")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sample_n", type=int, default=50_000)
    ap.add_argument("--sample_batch", type=int, default=5_000)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.smoke:
        a.repeats, a.sample_n, a.sample_batch = 1, 16, 8
    peak = matmul_peak_tflops(1024 if a.smoke else 8192)
    rows = []
    for name in a.configs.split(","):
        if not os.path.exists(os.path.join(ROOT, "configs", CONFIGS[name][0])):
            print(f"skip {name}: configs/{CONFIGS[name][0]} does not exist")
            continue
        for precision in a.precision.split(","):
            row = bench(name, precision, a)
            row["fraction_of_bf16_peak"] = row["achieved_tflops"] / peak
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"device": str(jax.devices()[0]), "bf16_matmul_peak_tflops": peak, "rows": rows}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    print(f"\ndevice: {result['device']}; measured bf16 matmul peak {peak:.1f} TFLOP/s")
    print(
        "| config | precision | ms / iteration | flow steps/s | TFLOP/iter | TFLOP/s | "
        "of peak | samples/s (K+κ) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['precision']} | {r['ms_per_iteration']:.1f} | "
            f"{r['flow_steps_per_s']:.0f} | {r['tflop_per_iteration']:.2f} | "
            f"{r['achieved_tflops']:.1f} | {100 * r['fraction_of_bf16_peak']:.0f}% | "
            f"{r['samples_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
