"""Speed of each image config against its physical limit: FLOPs and bytes per training
iteration, lower bounds on an H100 / H200, compile times, and (on a device) measured times.

    python benchmarks/speed.py [--configs=cifar10,cifar10-nosn,celeba64,church128,cat2dog]
        [--precision=float32,bfloat16] [--batch=64] [--repeats=5] [--sample_batch=500]
        [--sample_batches=1] [--cost_only | --no_run] [--no_cost [--limits=FILE]]
        [--budget_s=0] [--out=speed.json]
    python benchmarks/speed.py --smoke     # seconds on a CPU: checks the script, not the speed

For each config at its own K (the paper's: 100) and κ:
- cost: XLA's cost analysis (FLOPs, bytes accessed) of the compiled programs of this
  backend, with direct convolutions (`model.conv_grad = "xla"`, as on a GPU). XLA counts a loop
  body once whatever its trip count, so an iteration is counted as its loop-free parts: the
  iteration without a flow (prior draw, the spectral-norm update, loss and parameter
  gradient on 2 × batch, Adam, EMA) plus K × one flow step (forward and input gradient of
  the net on the batch, the net's spectral norms applied, as in the flow).
  `--no_cost` skips these compilations (`--limits`: take the counts from an earlier run's
  --out file, e.g. benchmarks/physical_limits.json, from `--cost_only`, which stops there;
  a config and precision the file lacks is counted here);
- lower bounds: per iteration, max(FLOPs / peak, bytes / bandwidth) with the datasheet peaks
  of one H100 SXM and one H200 SXM (`PEAKS`): float32 convolutions and matmuls run as TF32 on
  those GPUs by JAX's default precision, bfloat16 at the bf16 tensor-core peak;
- compile time of the training step (the K-step program `trainer.make_train_step` builds) and
  of the sampler (`sampler.Sampler`, flow length a run-time value) at `--sample_batch`
  (0: no sampler): tracing + lowering + XLA's compile, as `jax.monitoring` reports them;
- with `--no_run` the programs are compiled ahead of time and not run (a CPU would run an
  image config's step at batch 64 for minutes); otherwise ms per training iteration (median
  of --repeats after the compiling call, state donated, device synchronised) and sampling
  throughput (K + κ steps, --sample_batches batches of --sample_batch after the compiling
  call); on a GPU also a measured bf16 matmul peak. `--budget_s` skips the configs not
  started when that many seconds have passed.
Data (and cat2dog's source images) are `synthetic` images of the config's size (the data draw
is a device-side gather either way); a data-dependent prior is fitted at rank 64 (its form does
not change the flow).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp

from fdrl_jax import configlib, flows, trainer
from fdrl_jax.experiment import build_experiment
from fdrl_jax.models import apply_spectral_norms
from fdrl_jax.sampler import Sampler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {  # name -> (config file, overrides)
    "cifar10": ("cifar10.py", {}),
    "cifar10-nosn": ("cifar10.py", {"model.spectral_norm": False}),
    "celeba64": ("celeba64.py", {}),
    "church128": ("church128.py", {}),
    "cat2dog": ("cat2dog.py", {}),
}
# Dense (no sparsity) peaks, TFLOP/s, and memory bandwidth, TB/s: NVIDIA's H100 Tensor Core GPU
# datasheet (H100 SXM column) and H200 Tensor Core GPU datasheet (H200 SXM column). The
# datasheets quote tensor-core figures with 2:4 sparsity; dense is half (bf16 1,979 -> 989.5,
# TF32 989 -> 494.5). FP32 (no tensor cores) is 67 on both.
PEAKS = {
    "H100 SXM": {"bfloat16": 989.5, "tf32": 494.5, "fp32": 67.0, "tb_per_s": 3.35},
    "H200 SXM": {"bfloat16": 989.5, "tf32": 494.5, "fp32": 67.0, "tb_per_s": 4.8},
}
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_seen: collections.Counter = collections.Counter()


def _listen(event: str, duration: float, **_) -> None:
    if event in COMPILE_EVENTS:
        _seen["s"] += duration


jax.monitoring.register_event_duration_secs_listener(_listen)


def _first_call(fn) -> tuple[float, float]:
    """(compile seconds, wall seconds) of fn() (which must block)."""
    _seen.clear()
    t = time.perf_counter()
    fn()
    return _seen["s"], time.perf_counter() - t


def _config(name: str, precision: str, batch: int, smoke: bool):
    path, overrides = CONFIGS[name]
    c = configlib.load_config(os.path.join(ROOT, "configs", path) + (":smoke" if smoke else ""))
    c.data.name, c.data.synthetic_count = "synthetic", 256
    c.data.size = c.data.size or 64
    c.data.channels = c.data.channels or 3
    c.data.resize = 0  # synthetic images are made at their size
    c.prior.form, c.prior.rank = "lowrank", 64
    if c.prior.name == "dataset":  # cat2dog: source-domain images, synthetic as the data
        c.prior.source.update(name="synthetic", synthetic_count=256, size=c.data.size, resize=0)
    c.train.precision = precision
    if not smoke:
        c.train.batch_size = batch
    return configlib.override(c, overrides)


def _timed(fn, repeats: int) -> float:
    """Median seconds of fn() (which must block)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cost(fn, *args, lowered=None) -> tuple[float, float]:
    """(FLOPs, bytes accessed) of fn's program (or of a `lowered` one) compiled for this
    backend."""
    lowered = jax.jit(fn).lower(*args) if lowered is None else lowered
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan"))), float(cost.get("bytes accessed", float("nan")))


def lower_bounds_ms(flops: float, nbytes: float, precision: str) -> dict[str, float]:
    """Per GPU: the least ms at which `flops` and `nbytes` fit its peak and bandwidth."""
    unit = "bfloat16" if precision == "bfloat16" else "tf32"
    out = {}
    for gpu, p in PEAKS.items():
        out[gpu] = 1e3 * max(flops / (p[unit] * 1e12), nbytes / (p["tb_per_s"] * 1e12))
        if precision != "bfloat16":  # the same at full float32 (CUDA cores, no TF32)
            fp32 = 1e3 * max(flops / (p["fp32"] * 1e12), nbytes / (p["tb_per_s"] * 1e12))
            out[gpu + ", fp32"] = fp32
    return out


def cost_of_iteration(exp, state) -> dict[str, float]:
    """FLOPs and bytes of one training iteration: without its flow + K × one flow step,
    counted on the direct convolutions (`model.conv_grad = "xla"`: what GPUs are given)."""
    c = configlib.override(exp.config.copy_and_resolve_references(), {"model.conv_grad": "xla"})
    model = exp.model.clone(conv_grad="xla") if hasattr(exp.model, "conv_grad") else exp.model
    exp = dataclasses.replace(exp, config=c, model=model)
    stale = configlib.override(c.copy_and_resolve_references(), {"stale_estimator": True})
    stale_exp = dataclasses.replace(exp, config=stale)
    stale_step = trainer.make_train_step(stale_exp)
    f0, b0 = _cost(None, lowered=stale_step.lower(state, stale_exp.data))
    b = c.train.batch_size
    x = exp.prior.sample(jax.random.PRNGKey(0), b)
    applied = apply_spectral_norms(state.variables)  # as the flow holds them

    def one_flow_step(variables, x):
        potential = flows.make_potential(exp.apply_fn, variables, exp.fprime)
        return flows.flow_step(potential, x, jax.random.PRNGKey(1), c.flow.eta, c.flow.nu)

    fs, bs = _cost(one_flow_step, applied, x)
    k = c.flow.num_steps
    return {
        "tflop_per_iteration": (f0 + k * fs) / 1e12,
        "gb_per_iteration": (b0 + k * bs) / 1e9,
        "tflop_per_flow_step": fs / 1e12,
        "gb_per_flow_step": bs / 1e9,
        "tflop_outside_flow": f0 / 1e12,
    }


def bench(name: str, precision: str, a) -> dict:
    c = _config(name, precision, a.batch, a.smoke)
    exp = build_experiment(c)
    step_fn = trainer.make_train_step(exp)
    state = trainer.initial_state(exp)
    row = {"config": name, "precision": precision, "batch": c.train.batch_size}
    row.update(K=c.flow.num_steps, kappa=c.flow.kappa, device=str(jax.devices()[0]))
    known = []
    if a.limits and not a.cost:  # the counts of an earlier run (they do not depend on it)
        with open(a.limits) as f:
            rows = json.load(f)["rows"]
        known = [r for r in rows if (r["config"], r["precision"]) == (name, precision)]
        if not known:
            print(f"{a.limits} has no row for {name} in {precision}: counting here", flush=True)
    if known:
        row.update({k: v for k, v in known[0].items() if k.startswith(("tflop", "gb_"))})
    elif a.cost or a.limits:
        row.update(cost_of_iteration(exp, state))
    if "tflop_per_iteration" in row:
        row["lower_bound_ms"] = lower_bounds_ms(
            row["tflop_per_iteration"] * 1e12, row["gb_per_iteration"] * 1e9, precision
        )
    if a.cost_only:
        return row
    holder = {"s": state}

    def one_iteration():
        holder["s"], m = step_fn(holder["s"], exp.data)
        jax.block_until_ready(m["loss"])

    sb, steps = a.sample_batch, c.flow.num_steps + c.flow.kappa
    sample_fn = Sampler(exp, num_steps=steps) if sb else None
    key = jax.random.PRNGKey(2)
    if a.no_run:  # compile only (ahead of time): a CPU runs an image config's step for minutes
        v = state.ema_variables
        row["compile_s_train_step"], _ = _first_call(
            lambda: step_fn.lower(state, exp.data).compile()
        )
        if sb:
            args = (v, exp.prior, key, None, sb, jnp.int32(steps), None)
            row["compile_s_sampler"], _ = _first_call(
                lambda: sample_fn._from_prior.lower(*args).compile()
            )
        return row
    row["compile_s_train_step"], _ = _first_call(one_iteration)
    v = holder["s"].ema_variables  # the first state's buffers were donated to the step
    if sb:
        row["compile_s_sampler"], _ = _first_call(lambda: sample_fn(v, key, sb).block_until_ready())
    iter_s = _timed(one_iteration, a.repeats)
    row["ms_per_iteration"] = 1e3 * iter_s
    if "tflop_per_iteration" in row:
        row["achieved_tflops"] = row["tflop_per_iteration"] / iter_s
    if sb:
        v = holder["s"].ema_variables  # the state's buffers were donated to the steps
        t = time.perf_counter()
        for i in range(a.sample_batches):
            sample_fn(v, jax.random.fold_in(key, i), sb).block_until_ready()
        sample_s = (time.perf_counter() - t) / a.sample_batches
        row.update(
            sample_batch=sb,
            sample_steps=steps,
            samples_per_s=sb / sample_s,
            ms_per_flow_step_sampling=1e3 * sample_s / steps,
        )
    return row


def matmul_peak_tflops(n: int = 8192, repeats: int = 10) -> float:
    """Measured bf16 matmul throughput (the denominator of the utilisation figures)."""
    a = jnp.ones((n, n), jnp.bfloat16)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    sec = _timed(lambda: f(a).block_until_ready(), repeats)
    return 2 * n**3 / sec / 1e12


def _fmt(r: dict, key: str, spec: str) -> str:
    return format(r[key], spec) if key in r else "–"


def _table(rows: list[dict], peak: float | None) -> None:
    print(
        "| config | precision | TFLOP / iteration | GB / iteration | TFLOP / flow step | "
        "bound H100 (ms) | bound H200 (ms) | compile train / sampler (s) | ms / iteration | "
        "samples/s (K+κ) | TFLOP/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lb = r.get("lower_bound_ms", {})
        tf = _fmt(r, "achieved_tflops", ".1f")
        if peak and "achieved_tflops" in r:
            tf += f" ({100 * r['achieved_tflops'] / peak:.0f}% of bf16 peak)"
        print(
            f"| {r['config']} | {r['precision']} | {_fmt(r, 'tflop_per_iteration', '.2f')} | "
            f"{_fmt(r, 'gb_per_iteration', '.1f')} | {_fmt(r, 'tflop_per_flow_step', '.3f')} | "
            f"{_fmt(lb, 'H100 SXM', '.1f')} | {_fmt(lb, 'H200 SXM', '.1f')} | "
            f"{_fmt(r, 'compile_s_train_step', '.1f')} / {_fmt(r, 'compile_s_sampler', '.1f')} | "
            f"{_fmt(r, 'ms_per_iteration', '.1f')} | {_fmt(r, 'samples_per_s', '.0f')} | {tf} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--precision", default="float32,bfloat16")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sample_batch", type=int, default=500)
    ap.add_argument("--sample_batches", type=int, default=1)
    ap.add_argument("--no_run", action="store_true", help="cost and compile times only")
    ap.add_argument("--cost_only", action="store_true", help="FLOPs, bytes and bounds only")
    ap.add_argument("--no_cost", dest="cost", action="store_false", help="skip cost analysis")
    ap.add_argument("--limits", default="", help="with --no_cost: FLOPs and bytes from this file")
    ap.add_argument("--budget_s", type=float, default=0, help="0: no limit")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.smoke:
        a.repeats, a.sample_batch = 1, 8
    start = time.time()
    on_gpu = jax.devices()[0].platform == "gpu"
    peak = matmul_peak_tflops() if (on_gpu and not a.no_run) else None
    rows, skipped = [], []
    result = {
        "device": str(jax.devices()[0]),
        "bf16_matmul_peak_tflops": peak,
        "rows": rows,
        "skipped_for_budget": skipped,
        "peaks": PEAKS,
    }

    def save() -> None:  # after every row: a run stopped from outside keeps what it measured
        if a.out:
            with open(a.out, "w") as f:
                json.dump(result, f, indent=1)

    for precision in a.precision.split(","):  # every config in one precision first
        for name in a.configs.split(","):
            if a.budget_s and time.time() - start > a.budget_s:
                skipped.append(f"{name}/{precision}")
                continue
            row = bench(name, precision, a)
            if peak and "achieved_tflops" in row:
                row["fraction_of_bf16_peak"] = row["achieved_tflops"] / peak
            rows.append(row)
            print(json.dumps(row), flush=True)
            save()
    save()
    print(
        f"\ndevice: {result['device']}" + (f"; bf16 matmul peak {peak:.0f} TFLOP/s" if peak else "")
    )
    _table(rows, peak)
    if skipped:
        print(f"skipped (over --budget_s={a.budget_s:g}): {', '.join(skipped)}")


if __name__ == "__main__":
    main()
