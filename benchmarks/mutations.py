"""Mutation testing: does the test suite notice a one-line slip in the algorithm?

Each mutation is a text replacement in one file of the package (a flipped sign, swapped
arguments, a dropped clamp, ...) that a user would notice in their samples. For each, the
repository is copied to a temporary directory, the mutation applied there, and the tests run
on the copy (`python -m pytest -m "not slow"` by default: the fast loop); the table says which
tests failed, i.e. caught it. The unmutated copy is run first and must pass.

    python benchmarks/mutations.py                         # every mutation, the fast suite
    python benchmarks/mutations.py --only=flow-sign,ema-swapped --tests="tests/test_trainer.py"
    python benchmarks/mutations.py --list

Prints a markdown table (and writes it with --out). On a 2-core CPU each mutation costs one
run of the selected tests (~2 minutes for the fast suite).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Not copied: version control, environments, run outputs, caches. `.cache` (the FID weights of
# the parity tests) is linked instead, so those tests run on the copy as they do here.
IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "runs", "__pycache__", ".pytest_cache", ".ruff_cache", ".cache", "*.egg-info"
)


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    what: str  # the slip, in words
    file: str  # relative to the repository root
    edits: tuple[tuple[str, str], ...]  # (original text, replacement); each original once


def _m(name, what, file, *edits):
    return Mutation(name, what, file, tuple(edits))


MUTATIONS = [
    # The first four: slips in the core of Algorithm 1 and the flow.
    _m(
        "flow-sign",
        "the flow climbs f'(r) instead of descending it",
        "fdrl_jax/flows.py",
        ("return x - eta * grad + nu * noise", "return x + eta * grad + nu * noise"),
    ),
    _m(
        "loss-terms-swapped",
        "the loss gets the data's outputs as the flowed samples' and vice versa",
        "fdrl_jax/algorithms.py",
        (
            "return loss_fn(out_q, out_p), (out_q, out_p)",
            "return loss_fn(out_p, out_q), (out_q, out_p)",
        ),
    ),
    _m(
        "fprime-kl-is-js",
        "the KL pairing flows with JS's f'",
        "fdrl_jax/divergences.py",
        ('"kl": kl_fprime,', '"kl": js_fprime,'),
    ),
    _m(
        "loss-sees-prior",
        "the loss sees the prior draw x_0 instead of the flowed x_K",
        "fdrl_jax/algorithms.py",
        ("jnp.concatenate([x_k, x_p])", "jnp.concatenate([x0, x_p])"),
    ),
    # More slips in the algorithm's pieces.
    _m(
        "fprime-js-is-logd",
        "the JS pairing flows with logD's f'",
        "fdrl_jax/divergences.py",
        ('"js": js_fprime,', '"js": logd_fprime,'),
    ),
    _m(
        "fprime-logd-sign",
        "logD's f' with the wrong sign",
        "fdrl_jax/divergences.py",
        ("return -jax.nn.log_sigmoid(-out)", "return jax.nn.log_sigmoid(-out)"),
    ),
    _m(
        "lr-labels-swapped",
        "the LR loss labels data 1 and flowed samples 0",
        "fdrl_jax/divergences.py",
        (
            "jnp.mean(jax.nn.softplus(out_p)) + jnp.mean(jax.nn.softplus(-out_q))",
            "jnp.mean(jax.nn.softplus(-out_p)) + jnp.mean(jax.nn.softplus(out_q))",
        ),
    ),
    _m(
        "eta-twice",
        "the step size applied twice (η² ∇)",
        "fdrl_jax/flows.py",
        ("return x - eta * grad + nu * noise", "return x - eta * eta * grad + nu * noise"),
    ),
    _m(
        "noise-sqrt-2-eta-nu",
        "the noise scaled √(2ην) (DGflow's convention) instead of ν",
        "fdrl_jax/flows.py",
        (
            "return x - eta * grad + nu * noise",
            "return x - eta * grad + jnp.sqrt(2 * eta * nu) * noise",
        ),
    ),
    _m(
        "flow-not-stopped",
        "no stop-gradient on the chain: gradients flow back through the flow",
        "fdrl_jax/flows.py",
        ("    x0 = jax.lax.stop_gradient(x0)\n", ""),
        (
            "return jax.lax.stop_gradient(\n"
            "            _run(potential, x0, key, start_step, start_step + num_steps, eta, nu)\n"
            "        )",
            "return _run(potential, x0, key, start_step, start_step + num_steps, eta, nu)",
        ),
    ),
    _m(
        "loss-through-flow",
        "the loss differentiates through the flow (x_K recomputed from the params it updates)",
        "fdrl_jax/algorithms.py",
        (
            "jnp.concatenate([x_k, x_p])",
            "jnp.concatenate([flows._run(flows.make_potential(apply_fn, "
            '{"params": params, **stats}, fprime), x0, k_flow, 0, num_flow_steps, eta, nu), x_p])',
        ),
    ),
    _m(
        "flow-with-ema",
        "training flows with the EMA params instead of the current ones",
        "fdrl_jax/algorithms.py",
        (
            'make_potential(apply_fn, {"params": state.params',
            'make_potential(apply_fn, {"params": state.ema_params',
        ),
    ),
    _m(
        "ema-swapped",
        "the EMA keeps 1 − m of the old average instead of m",
        "fdrl_jax/algorithms.py",
        ("state.ema_params, 1.0 - ema_decay)", "state.ema_params, ema_decay)"),
    ),
    _m(
        "fdrl-is-stale",
        "training does not flow (the stale-estimator switch inverted)",
        "fdrl_jax/trainer.py",
        (
            "0 if c.stale_estimator else c.flow.num_steps",
            "c.flow.num_steps if c.stale_estimator else 0",
        ),
    ),
    _m(
        "train-k-plus-kappa",
        "training flows K + κ steps instead of K",
        "fdrl_jax/trainer.py",
        ("else c.flow.num_steps,", "else c.flow.num_steps + c.flow.kappa,"),
    ),
    _m(
        "prior-std-ignored",
        "the Gaussian prior's configured std is ignored (N(μ, I) always)",
        "fdrl_jax/priors.py",
        ('std=cfg.get("std", 1.0)', "std=1.0"),
    ),
    _m(
        "sampler-k-steps",
        "the sampler flows K steps instead of K + κ",
        "fdrl_jax/sampler.py",
        (
            "c.flow.num_steps + c.flow.kappa if num_steps is None",
            "c.flow.num_steps if num_steps is None",
        ),
    ),
    _m(
        "sample-live-params",
        "--mode=sample draws with the live params instead of the EMA",
        "fdrl_jax/modes/sample_mode.py",
        ("sample_many(state.ema_variables, key", "sample_many(state.variables, key"),
    ),
    _m(
        "prior-not-clamped",
        "the prior draw is not clamped to [-1, 1] (images)",
        "fdrl_jax/algorithms.py",
        ("return clip_images(x0) if clip else x0", "return x0"),
    ),
    _m(
        "ddp-chol-transposed",
        "the data-dependent prior samples μ + Lᵀε instead of μ + Lε",
        "fdrl_jax/priors.py",
        ("eps @ self.chol.T", "eps @ self.chol"),
    ),
    _m(
        "no-flip",
        "training images are never flipped",
        "fdrl_jax/data/images.py",
        ("x = jnp.where(flips, x[:, :, ::-1, :], x)", "x = jnp.where(flips, x, x)"),
    ),
    _m(
        "vertical-flip",
        "training images are flipped upside down instead of left-right",
        "fdrl_jax/data/images.py",
        ("x[:, :, ::-1, :], x)", "x[:, ::-1, :, :], x)"),
    ),
    _m(
        "no-dequantisation",
        "no dequantisation noise on training images",
        "fdrl_jax/data/images.py",
        ("x = x + dequant_std * jax.random", "x = x + 0.0 * jax.random"),
    ),
    _m(
        "resize-nearest",
        "images resized with nearest-neighbour sampling instead of antialiased bilinear",
        "fdrl_jax/data/images.py",
        ("img = img.resize(new, Image.BILINEAR)", "img = img.resize(new, Image.NEAREST)"),
    ),
    _m(
        "pixels-0-1",
        "pixels scaled to [0, 1] instead of [-1, 1]",
        "fdrl_jax/data/images.py",
        ("return x.astype(jnp.float32) / 127.5 - 1.0", "return x.astype(jnp.float32) / 255.0"),
    ),
]


def copy_tree(dest: str) -> None:
    shutil.copytree(ROOT, dest, ignore=IGNORE, symlinks=True)
    cache = os.path.join(ROOT, ".cache")
    if os.path.isdir(cache):
        os.symlink(cache, os.path.join(dest, ".cache"))


def mutated_text(mutation: Mutation, tree: str) -> str:
    """The mutated text of `mutation.file` in `tree`."""
    with open(os.path.join(tree, mutation.file)) as f:
        text = f.read()
    for old, new in mutation.edits:
        count = text.count(old)
        if count != 1:  # the code moved on: fix the mutation rather than test nothing
            raise SystemExit(f"{mutation.name}: {old!r} occurs {count} times in {mutation.file}")
        text = text.replace(old, new)
    return text


def apply(mutation: Mutation, tree: str) -> None:
    text = mutated_text(mutation, tree)
    with open(os.path.join(tree, mutation.file), "w") as f:
        f.write(text)


FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def run_tests(tree: str, pytest_args: list[str], timeout: float) -> tuple[list[str], str, float]:
    """(failed test ids, pytest's summary line, seconds) for the tests on `tree`."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    t0 = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *pytest_args],
            cwd=tree,  # `python -m` puts the copy first on sys.path: it imports the mutant
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return ["(timed out)"], f"timed out after {timeout:.0f} s", time.time() - t0
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else proc.stderr.strip()[-200:]
    failed = sorted(set(FAILED.findall(proc.stdout)))
    if proc.returncode not in (0, 1) and not failed:  # collection or usage error
        failed = [f"(pytest exit {proc.returncode})"]
    return failed, summary, time.time() - t0


def compact(test_ids: list[str]) -> list[str]:
    """Test ids without their parameters, with how many parameter sets failed:
    `tests/test_x.py::test_y[a]`, `...[b]` -> `tests/test_x.py::test_y [2 cases]`."""
    counts: dict[str, int] = {}
    for t in test_ids:
        base = t.split("[", 1)[0]
        counts[base] = counts.get(base, 0) + 1
    return [f"{b} [{n} cases]" if n > 1 else b for b, n in counts.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated mutation names")
    ap.add_argument(
        "--tests", default="-m 'not slow'", help="pytest arguments (default: fast loop)"
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per test run")
    ap.add_argument("--out", default="", help="also write the markdown table here")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = ap.parse_args()
    mutations = MUTATIONS
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {m.name for m in MUTATIONS}
        if unknown:
            raise SystemExit(f"Unknown mutations {sorted(unknown)}; see --list")
        mutations = [m for m in MUTATIONS if m.name in wanted]
    if args.list:
        for m in mutations:
            print(f"{m.name:22s} {m.file:26s} {m.what}")
        return
    pytest_args = shlex.split(args.tests)

    with tempfile.TemporaryDirectory(prefix="fdrl_mutations_") as tmp:
        for m in mutations:  # every mutation applies to the code as it is now
            mutated_text(m, ROOT)
        base = os.path.join(tmp, "unmutated")
        copy_tree(base)
        failed, summary, secs = run_tests(base, pytest_args, args.timeout)
        print(f"unmutated: {summary} ({secs:.0f} s)", flush=True)
        if failed:
            raise SystemExit(f"The unmutated tests fail ({failed}); fix that first.")
        shutil.rmtree(base)

        rows = []
        for m in mutations:
            tree = os.path.join(tmp, m.name)
            copy_tree(tree)
            apply(m, tree)
            failed, summary, secs = run_tests(tree, pytest_args, args.timeout)
            shutil.rmtree(tree)
            rows.append((m, failed, secs))
            status = f"caught by {len(failed)}" if failed else "NOT CAUGHT"
            print(f"{m.name}: {status} ({secs:.0f} s): {summary}", flush=True)

    table = [
        f"Tests: `python -m pytest {args.tests}` on a mutated copy of the repository.",
        "",
        "| mutation | file | the slip | caught by (failing tests) |",
        "|---|---|---|---|",
    ]
    for m, failed, _ in rows:
        caught = "<br>".join(f"`{t}`" for t in compact(failed)) if failed else "**not caught**"
        table.append(f"| {m.name} | `{m.file}` | {m.what} | {caught} |")
    missed = [m.name for m, failed, _ in rows if not failed]
    table += [
        "",
        f"{len(rows) - len(missed)}/{len(rows)} caught"
        + (f"; missed: {missed}" if missed else "."),
    ]
    text = "\n".join(table)
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
