"""Cost of agreeing on a stop step in a multi-process run.

Starts 2 CPU processes × 2 devices joined by jax.distributed (gloo), builds the swissroll smoke
experiment's train step, and times blocks of steps with, after every step:
- `none`: no check (what a single process does: read a Python flag);
- `sync`: `multihost_utils.reached_preemption_sync_point(i)` (JAX's preemption sync manager,
  what `multihost.StopRequests` uses);
- `gather`: `process_allgather` of the local flag (the fallback when the preemption service
  is off): a collective plus a device-to-host copy, so the host waits for every step.
Blocks rotate through the modes `--repeats` times; the medians are printed. Blocks are short
(the host waits at each block's end): on this 2-core machine, 100+ steps dispatched without
the host waiting deadlock in a gloo CollectivePermute (see the README's multi-host notes).

    python benchmarks/stop_check_cost.py [--steps=25 --repeats=8]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(pid: int, port: int, steps: int, repeats: int) -> None:
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    from fdrl_jax import configlib, parallel, train
    from fdrl_jax.experiment import build_experiment

    parallel.initialize("on", f"127.0.0.1:{port}", 2, pid)
    config = configlib.toy_config("swissroll", "smoke")
    exp = build_experiment(config)
    mesh = parallel.make_mesh()
    step_fn, tx = train.make_step_fn(exp, mesh)
    state = train.initial_state(exp, tx, mesh)
    checks = {
        "none": lambda i: False,
        "sync": multihost_utils.reached_preemption_sync_point,
        "gather": lambda i: bool(np.any(multihost_utils.process_allgather(np.int32(0)))),
    }
    for check in checks.values():  # compile / warm up
        state, _ = step_fn(state)
        check(0)
    times = {name: [] for name in checks}
    i = 0
    for _ in range(repeats):
        for name, check in checks.items():
            jax.block_until_ready(state)
            t = time.perf_counter()
            for _ in range(steps):
                i += 1
                state, _ = step_fn(state)
                check(i)
            jax.block_until_ready(state)
            times[name].append((time.perf_counter() - t) / steps * 1e3)
    # The checks alone, without training steps in between.
    alone = {}
    for name, check, n in (("sync", checks["sync"], 2000), ("gather", checks["gather"], 200)):
        per = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                i += 1
                check(i)
            per.append((time.perf_counter() - t) / n * 1e3)
        alone[name] = float(np.median(per))
    if pid == 0:
        print(
            f"check alone: sync {alone['sync'] * 1e3:.1f} us/call, gather "
            f"{alone['gather']:.3f} ms/call (medians of 5 blocks)",
            flush=True,
        )
        base = np.median(times["none"])
        for name, ts in times.items():
            med = np.median(ts)
            print(
                f"{name:7s} median {med:7.3f} ms/step  (+{med - base:6.3f} ms vs none)  "
                f"blocks: {', '.join(f'{t:.2f}' for t in ts)}",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--worker", type=int, default=None)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    if a.worker is not None:
        return worker(a.worker, a.port, a.steps, a.repeats)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, f"--worker={i}", f"--port={port}"]
            + [f"--steps={a.steps}", f"--repeats={a.repeats}"],
            cwd=ROOT,
            env=dict(env, PYTHONPATH=ROOT),
        )
        for i in range(2)
    ]
    sys.exit(max(p.wait() for p in procs))


if __name__ == "__main__":
    main()
