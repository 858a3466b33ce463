"""Compile and run time of a config's training step and sampler, on n simulated CPU devices,
with extra XLA flags (e.g. the tests' `--xla_backend_optimization_level=0`).

    python benchmarks/compile_time.py --config=configs/cifar10.py:smoke --devices=1 \
        --xla_flags=--xla_backend_optimization_level=0

Prints one line: import and build, compile + first step, 20 more steps, the sampler's compile
and first call (seconds). Run it with the compilation cache off (JAX_COMPILATION_CACHE_DIR
unset) to time compilation.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/cifar10.py:smoke")
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--xla_flags", default="")
    args = ap.parse_args()
    os.environ["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={args.devices} {args.xla_flags}"
    )
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    t0 = time.time()
    import jax

    from fdrl_jax import configlib, parallel, trainer
    from fdrl_jax.experiment import build_experiment
    from fdrl_jax.sampler import Sampler

    exp = build_experiment(configlib.load_config(args.config))
    mesh = parallel.make_mesh()
    t1 = time.time()
    step = trainer.make_train_step(exp, mesh)
    state = trainer.initial_state(exp, mesh)
    state, m = step(state, exp.data)
    jax.block_until_ready(m)
    t2 = time.time()
    for _ in range(20):
        state, m = step(state, exp.data)
    jax.block_until_ready(m)
    t3 = time.time()
    x = Sampler(exp, mesh=mesh)(state.ema_variables, jax.random.PRNGKey(0), 256)
    jax.block_until_ready(x)
    t4 = time.time()
    print(
        f"{args.config} devices {jax.device_count()} flags {args.xla_flags!r}: import+build "
        f"{t1 - t0:.1f} s, compile+1 step {t2 - t1:.1f} s, 20 steps {t3 - t2:.2f} s, "
        f"sampler {t4 - t3:.1f} s"
    )


if __name__ == "__main__":
    main()
