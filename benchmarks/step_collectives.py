"""The collectives in a compiled training step on N devices, and where they run.

    python benchmarks/step_collectives.py [--devices=4] [--configs=configs/swissroll.py:smoke,...]

For each config, a fresh process with N simulated CPU devices
(`--xla_force_host_platform_device_count`) builds the step that `--mode=train` runs
(`trainer.make_train_step` on a mesh over all devices), runs it once with XLA's dump on, and counts
the collective ops (all-reduce, all-gather, collective-permute, all-to-all, reduce-scatter) in
the optimised program, split into those inside a while loop (the flow: executed K times per
step) and those outside (executed once per step). Counts are of ops in the program text, not
of bytes; GPU and TPU compilers may place the same program's collectives differently.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("all-reduce", "all-gather", "collective-permute", "all-to-all", "reduce-scatter")

CHILD = r"""
import sys
import jax
from fdrl_jax import configlib, parallel, trainer
from fdrl_jax.experiment import build_experiment
exp = build_experiment(configlib.load_config(sys.argv[1]))
mesh = parallel.make_mesh()
step_fn = trainer.make_train_step(exp, mesh)
state = trainer.initial_state(exp, mesh)
state, m = step_fn(state, trainer.batches(exp, mesh).get(0))
jax.block_until_ready(m)
"""

# `%name = type kind(...)`, with the -start halves of async pairs counted once
_OP = re.compile(r"=\s*\S.*?\s(" + "|".join(KINDS) + r")(-start)?\(")
_COMP = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_WHILE_BODY = re.compile(r"\swhile\(.*body=%?([\w.\-]+)")
_CALLS = re.compile(r"(?:to_apply|body|condition|calls|branch_computations)=\{?%?([\w.\-, %]+)\}?")


def census(hlo: str) -> dict[str, dict[str, int]]:
    """{"while loops": n, "in loop" | "outside loops": {kind: count}} of one optimised HLO
    module's text."""
    comps, current = {}, None  # computation name -> its lines
    for line in hlo.splitlines():
        m = _COMP.match(line)
        if m and not line.startswith(" "):
            current = comps.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
    calls = {}  # computation name -> names it refers to (to_apply=, calls=, body=, ...)
    for name, body in comps.items():
        refs = (ref for line in body for group in _CALLS.findall(line) for ref in group.split(","))
        calls[name] = {ref.strip().lstrip("%") for ref in refs}
    todo = [b for body in comps.values() for line in body for b in _WHILE_BODY.findall(line)]
    loops = len(todo)
    in_loop = set()
    while todo:  # every computation reachable from a loop body runs inside the loop
        name = todo.pop()
        if name in comps and name not in in_loop:
            in_loop.add(name)
            todo.extend(calls[name])
    out = {"in loop": collections.Counter(), "outside loops": collections.Counter()}
    for name, body in comps.items():
        for line in body:
            m = _OP.search(line)
            if m:
                out["in loop" if name in in_loop else "outside loops"][m.group(1)] += 1
    return {"while loops": loops, **{k: dict(v) for k, v in out.items()}}


def run(config: str, devices: int) -> dict[str, dict[str, int]]:
    with tempfile.TemporaryDirectory() as dump:
        flags = f"--xla_force_host_platform_device_count={devices} --xla_dump_to={dump}"
        env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
        subprocess.run([sys.executable, "-c", CHILD, config], env=env, check=True, cwd=ROOT)
        files = glob.glob(os.path.join(dump, "*jit_step_fn*after_optimizations.txt"))
        if len(files) != 1:
            raise SystemExit(f"expected one optimised step_fn module in the dump, found {files}")
        with open(files[0]) as f:
            return census(f.read())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--configs", default="configs/swissroll.py:smoke,configs/cifar10.py:smoke")
    a = ap.parse_args()
    print("| config | devices | outside loops (once a step) | inside loops (the flow among them) |")
    print("|---|---|---|---|")
    for config in a.configs.split(","):
        c = run(config, a.devices)
        fmt = lambda d: ", ".join(f"{n} × {k}" for k, n in sorted(d.items())) or "none"  # noqa: E731
        loops = f"{fmt(c['in loop'])} ({c['while loops']} loops)"
        print(f"| `{config}` | {a.devices} | {fmt(c['outside loops'])} | {loops} |")
        print(json.dumps({"config": config, "devices": a.devices, **c}), file=sys.stderr)


if __name__ == "__main__":
    main()
