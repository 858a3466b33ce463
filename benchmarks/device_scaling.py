"""Training throughput against the number of (simulated or real) devices.

    python benchmarks/device_scaling.py [--devices=1,2,4,8] [--steps=200] [-- --config.x=y]

Each count runs in a fresh process; on CPU, XLA_FLAGS=--xla_force_host_platform_device_count
splits the host into that many devices (they share the same cores). Reports the median
steps/s over timed chunks after compilation. Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
import jax
from fdrl_jax import configlib, parallel, trainer
from fdrl_jax.experiment import build_experiment
config = configlib.load_config("configs/swissroll.py")
for kv in sys.argv[2:]:
    path, value = kv.removeprefix("--config.").split("=")
    node, leaf = path.rsplit(".", 1)
    config[node][leaf] = type(config[node][leaf])(value)
exp = build_experiment(config)
mesh = parallel.make_mesh()
step_fn = trainer.make_train_step(exp, mesh)
state = trainer.initial_state(exp, mesh)
state, m = step_fn(state, exp.data); jax.block_until_ready(m)  # compile
rates = []
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(int(sys.argv[1]) // 5):
        state, m = step_fn(state, exp.data)
    jax.block_until_ready(m)
    rates.append((int(sys.argv[1]) // 5) / (time.perf_counter() - t0))
rates.sort()
print(json.dumps({"devices": jax.device_count(), "steps_per_sec": rates[2],
                  "batch": config.train.batch_size, "K": config.flow.num_steps}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", default="1,2,4,8")
    ap.add_argument("--steps", type=int, default=200)
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    rows = []
    for n in map(int, args.devices.split(",")):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
        env.setdefault("JAX_PLATFORMS", "cpu")
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.steps), *extra],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    base = rows[0]["steps_per_sec"]
    print("| devices | steps/s | speed-up |\n|---|---|---|")
    for r in rows:
        print(f"| {r['devices']} | {r['steps_per_sec']:.1f} | {r['steps_per_sec'] / base:.2f}× |")


if __name__ == "__main__":
    main()
