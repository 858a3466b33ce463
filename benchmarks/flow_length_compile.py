"""Compile time per extra flow length: a static step count (before) vs a run-time one (after).

    python benchmarks/flow_length_compile.py [--nets=cifar10,mlp] [--batch=4]
        [--lengths=100,110,120,130] [--record_at=100,105,110,115,120,125,130]

For each net, a jitted flow x0 -> x_L of f'(r_θ) (the sampler's program: params, x0 and key
are arguments) is called once at each length L:
- "static": the length is a constant of the program (`jax.jit` with L closed over, as
  the sampler did): every new length traces and compiles a new program;
- "run-time": the length is an int32 argument (`flow.flow` with a traced `num_steps`, a while
  loop): the first call compiles, later lengths reuse the program.
Compile time is what JAX reports through `jax.monitoring` for the call (tracing, lowering to
MLIR and XLA's backend compile), so the flow's own run time is not counted. Then the same for
trajectories (`record_at`, FID against the flow length in one pass): recorded as segments of
static loops, one copy of the loop body per segment (the old `flow.flow`), against one loop
whose recorded lengths are run-time values (the new one).
"""

from __future__ import annotations

import argparse
import collections
import time

import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax import divergences, flows
from fdrl_jax.models import MLP, ResNetEstimator

ETA, NU = 3.0, 0.01
EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_seen: dict[str, list[float]] = collections.defaultdict(list)


def _listen(event: str, duration: float, **_) -> None:
    if event in EVENTS:
        _seen[event].append(duration)


jax.monitoring.register_event_duration_secs_listener(_listen)


def compile_cost(fn) -> tuple[float, int, float]:
    """(seconds of tracing + lowering + XLA compile during fn(), XLA compiles, wall seconds)."""
    _seen.clear()
    t = time.perf_counter()
    jax.block_until_ready(fn())
    wall = time.perf_counter() - t
    secs = sum(sum(v) for v in _seen.values())
    return secs, len(_seen[EVENTS[2]]), wall


def build(net_name: str, batch: int):
    if net_name == "mlp":
        net, shape = MLP(hidden=64, num_hidden_layers=3), (2,)
    else:
        net, shape = ResNetEstimator(net_name), (32, 32, 3)
    x0 = jax.random.uniform(jax.random.PRNGKey(0), (batch, *shape), minval=-1, maxval=1)
    v = net.init(jax.random.PRNGKey(1), x0)

    def potential(v):
        return flows.make_potential(net.apply, v, divergences.chi2_fprime)

    return potential, v, x0


def measure(name: str, batch: int, lengths: list[int], marks: list[int]) -> None:
    potential, v, x0 = build(name, batch)
    key = jax.random.PRNGKey(2)
    print(f"\n{name}: compile seconds (XLA compiles) / wall seconds of the call, per length")
    dynamic = jax.jit(lambda v, x, k, n: flows.flow(potential(v), x, k, n, ETA, NU))

    def static_flow(length: int):
        return jax.jit(lambda v, x, k: flows.flow(potential(v), x, k, length, ETA, NU))

    for length in lengths:
        static = static_flow(length)
        s = compile_cost(lambda: static(v, x0, key))  # noqa: B023 (called at once)
        d = compile_cost(lambda: dynamic(v, x0, key, np.int32(length)))  # noqa: B023
        print(
            f"  L = {length}: static {s[0]:6.2f} s ({s[1]}) / {s[2]:6.1f} s   "
            f"run-time {d[0]:6.2f} s ({d[1]}) / {d[2]:6.1f} s"
        )

    def segmented(v, x, k):
        # the old flow.flow with record_at: one static loop per segment between marks
        frames, done = [], 0
        for m in sorted(set(marks)):
            x = flows.flow(potential(v), x, k, m - done, ETA, NU, start_step=done)
            frames.append(x)
            done = m
        return x, jnp.stack(frames)

    one_loop = jax.jit(
        lambda v, x, k, n, m: flows.flow(potential(v), x, k, n, ETA, NU, record_at=m)
    )
    s = compile_cost(lambda: jax.jit(segmented)(v, x0, key))
    d = compile_cost(lambda: one_loop(v, x0, key, np.int32(max(marks)), np.int32(marks)))
    print(
        f"  record_at {marks}: segments {s[0]:6.2f} s ({s[1]}) / {s[2]:6.1f} s   "
        f"one loop {d[0]:6.2f} s ({d[1]}) / {d[2]:6.1f} s"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nets", default="cifar10,mlp")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lengths", default="100,110,120,130")
    p.add_argument("--record_at", default="100,105,110,115,120,125,130")
    a = p.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, batch {a.batch}")
    for name in a.nets.split(","):
        measure(
            name,
            a.batch,
            [int(s) for s in a.lengths.split(",")],
            [int(s) for s in a.record_at.split(",")],
        )


if __name__ == "__main__":
    main()
