"""One FDRL training iteration on CPU: fdrl-jax against PyTorch, same nets, shapes and K.

    python benchmarks/cpu_vs_torch.py [--cases=toy,nosn-5,nosn-20,sn-5,sn-20] [--repeats=5]
        [--conv_grad=auto[,auto+ynn,xla,...]] [--threads=0] [--xla_flags="..."] [--profile]
        [--op_profile]

Cases: "toy" is the 2D toy MLP (3 × 64, LeakyReLU) at batch 1024, K = 200, η = 1; "nosn-K" /
"sn-K" the CIFAR-10 ResNet (11.4 M parameters) with spectral norm off / on at batch 8, K flow
steps, η = 3 (any K: "sn-100"). An iteration is Algorithm 1 with LSIF-χ²: draw x0 ~ N(0, I)
(clamped to [-1, 1] for images), flow it K steps (x ← x − η ∇ₓ f'(r(x)) + ν ξ, ν = 0.01), one
Adam step on the LSIF loss between x_K and a data batch, EMA update. fdrl-jax runs the
package's `algorithms.train_step` (one jitted program, state donated; the spectral-norm update
once per step) with every `--conv_grad` given ("auto", the default: `models/conv_vjp.py`;
"xla": `lax` and JAX's own rule; either with "+ynn", e.g. "auto+ynn": compiled with XLA's
default CPU library fusions instead of the package's `compilation` options). PyTorch
runs the same network written in the reference's layout (`interop/reference_nets.py`, NCHW,
`torch.nn.utils.spectral_norm` in training mode as the reference trains: one power iteration
per forward) with the same weights, the flow with
`torch.autograd.grad` on x. Each prints ms per iteration, the median of --repeats calls after
a warm-up call, the programs of a case called round-robin so that load from other processes
hits them alike; the last column is PyTorch's time over that of the last --conv_grad.

`--profile` also times the pieces of the CIFAR-10 iteration (forward, input gradient at top
level and per step inside a K-step loop, parameter gradient of the loss on 2×batch, the
optimiser update) and counts the convolutions of the compiled flow by kernel layout;
`--op_profile` traces one iteration with `jax.profiler` and sums its XLA ops' time by where
they run (the flow's loop or outside, forward or backward) and what they are.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import re
import statistics
import time


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="toy,nosn-5,nosn-20,sn-5,sn-20")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--conv_grad",
        default="auto",
        help="comma-separated variants: auto, xla; '+ynn' (e.g. auto+ynn) compiles with XLA's "
        "default CPU convolutions (YNNPACK) instead of the package's `compilation` options",
    )
    p.add_argument("--profile", action="store_true", help="also time the pieces (CIFAR-10)")
    p.add_argument("--op_profile", action="store_true", help="per-op profile of an iteration")
    p.add_argument("--no_torch", action="store_true")
    p.add_argument("--xla_flags", default="", help="appended to XLA_FLAGS before JAX starts")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="1: both frameworks single-threaded (steadier on a shared machine); 0: defaults",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


ARGS = _parse()
_flags = ARGS.xla_flags
if ARGS.threads == 1:
    _flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
elif ARGS.threads > 1:
    raise SystemExit("--threads takes 0 (defaults) or 1")
if _flags.strip():  # must be set before jax is imported
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flags).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from fdrl_jax import algorithms, compilation, divergences, flows  # noqa: E402
from fdrl_jax.models import (  # noqa: E402
    CONV_GRADS,
    MLP,
    ResNetEstimator,
    apply_spectral_norms,
)
from fdrl_jax.priors import gaussian_prior  # noqa: E402

NU, LR, EMA = 0.01, 1e-4, 0.998


class Case:
    """One row of the table: the net, the batch, the flow length and step size."""

    def __init__(self, name: str):
        self.name = name
        if name == "toy":
            self.image, self.sn, self.k, self.batch, self.eta = False, False, 200, 1024, 1.0
            self.shape, self.title = (2,), "2D toy MLP, batch 1024, K = 200"
            return
        sn, k = name.split("-")
        if sn not in ("sn", "nosn") or not k.isdigit():
            raise SystemExit(f"unknown case {name!r}: toy, nosn-K or sn-K")
        self.image, self.sn, self.k, self.batch, self.eta = True, sn == "sn", int(k), 8, 3.0
        self.shape = (32, 32, 3)
        self.title = f"CIFAR-10 ResNet, SN {'on' if self.sn else 'off'}, batch 8, K = {k}"

    def net(self, conv_grad: str = "auto"):
        if not self.image:
            return MLP(hidden=64, num_hidden_layers=3)
        return ResNetEstimator("cifar10", spectral_norm=self.sn, conv_grad=conv_grad)

    def torch_cfg(self) -> ml_collections.ConfigDict:
        if not self.image:
            return ml_collections.ConfigDict({"name": "mlp", "hidden": 64, "num_hidden_layers": 3})
        return ml_collections.ConfigDict(
            {"name": "resnet", "arch": "cifar10", "spectral_norm": self.sn}
        )

    def data(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.uniform(-1, 1, (self.batch, *self.shape)).astype(np.float32)


@contextlib.contextmanager
def conv_grad_variant(variant: str):
    """Checks a --conv_grad value: a conv_grad of the model, optionally with "+ynn"."""
    grad, _, library = variant.partition("+")
    if grad not in CONV_GRADS or library not in ("", "ynn"):
        raise SystemExit(f"--conv_grad takes {', '.join(CONV_GRADS)}, each optionally +ynn")
    yield


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median ms of each fn after a warm-up call, calls interleaved round-robin."""
    for fn in fns.values():
        fn()
    times = collections.defaultdict(list)
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}


def conv_census(compiled_text: str) -> dict[str, int]:
    return dict(collections.Counter(re.findall(r"dim_labels=([a-z0-9_>-]+)", compiled_text)))


# ---------------------------------------------------------------------------------------- JAX


def jax_options(variant: str, net) -> dict | None:
    """The compiler options of a --conv_grad variant: the package's, or XLA's with "+ynn"."""
    return None if variant.endswith("+ynn") else compilation.compiler_options(net)


def jax_setup(case: Case, variant: str, seed: int):
    net = case.net(variant.partition("+")[0])
    options = jax_options(variant, net)
    tx, _ = algorithms.make_optimizer(LR)
    x = jnp.zeros((1, *case.shape), jnp.float32)
    state = algorithms.init_state(net, tx, jax.random.PRNGKey(seed), x)
    prior = gaussian_prior(case.shape)

    def update_stats(params, stats, x):
        _, new = net.apply({"params": params, **stats}, x, update_stats=True, mutable=list(stats))
        return dict(new)

    def step(state, x_p, key):
        return algorithms.train_step(
            state,
            prior,
            x_p,
            key,
            apply_fn=net.apply,
            tx=tx,
            fprime=divergences.chi2_fprime,
            loss_fn=divergences.lsif_loss,
            num_flow_steps=case.k,
            eta=case.eta,
            nu=NU,
            ema_decay=EMA,
            clip_prior=case.image,
            update_stats=update_stats,
        )

    return net, state, jax.jit(step, donate_argnums=0, compiler_options=options)


def jax_iteration(case: Case, conv_grad: str, x_p, seed: int):
    """(callable running one iteration and blocking, the initial variables, a callable
    returning the compiled program's HLO text)."""
    _, state, step = jax_setup(case, conv_grad, seed)
    variables = jax.tree.map(np.asarray, state.variables)
    box = {"state": state, "i": 0}

    def key():
        return jax.random.fold_in(jax.random.PRNGKey(seed + 1), box["i"])

    def run():
        box["state"], metrics = step(box["state"], x_p, key())
        box["i"] += 1
        jax.block_until_ready(metrics)

    return run, variables, lambda: step.lower(box["state"], x_p, key()).compile().as_text()


def op_profile(run, hlo_text: str) -> None:
    """One iteration traced by jax.profiler, the XLA ops' time summed by where they run (in
    the flow's loop or outside, forward or backward pass) and what they are."""
    import glob
    import gzip
    import json
    import tempfile

    ops = dict(re.findall(r"^\s*(?:ROOT )?%?([\w.\-]+) = (.*)$", hlo_text, re.M))
    folder = tempfile.mkdtemp()
    jax.profiler.start_trace(folder, create_perfetto_trace=True)
    t = time.perf_counter()
    run()
    wall = time.perf_counter() - t
    jax.profiler.stop_trace()
    [path] = glob.glob(f"{folder}/**/perfetto_trace.json.gz", recursive=True)
    with gzip.open(path) as f:
        trace = json.load(f)
    sums = collections.Counter()
    for e in trace["traceEvents"] if isinstance(trace, dict) else trace:
        op = e.get("args", {}).get("hlo_op")
        if not op or e["name"].startswith("end:") or op.startswith("while"):
            continue
        text = ops.get(op, "")
        name = re.search(r'op_name="([^"]*)"', text)
        name = name.group(1) if name else ""
        where = "flow" if "while/body" in name else "outside"
        where += ", backward" if "transpose(jvp" in name else ", forward" if "jvp(" in name else ""
        what = "convolution or matmul" if "__ynn" in text or " convolution(" in text else (
            "dot" if " dot(" in text else "elementwise / data movement"
        )  # fmt: skip
        sums[(where, what)] += e.get("dur", 0)
    print(f"\nXLA ops of one traced iteration ({1e3 * wall:.0f} ms wall), ms summed over threads:")
    for (where, what), us in sums.most_common():
        print(f"  {us / 1e3:9.1f}  {where:<20} {what}")


# ------------------------------------------------------------------------------------ PyTorch


def torch_setup(case: Case, variables, seed: int):
    import torch

    from fdrl_jax.interop import reference_nets, state_dict

    if ARGS.threads == 1:
        torch.set_num_threads(1)
    net = reference_nets.build_reference_net(case.torch_cfg(), case.shape)
    sd = state_dict.to_state_dict(variables)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=False)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(0.9, 0.999))
    ema = [p.detach().clone() for p in net.parameters()]
    torch.manual_seed(seed)
    return torch, net, opt, ema


def torch_flow(torch, net, x, flow_steps: int, eta: float, nu: float):
    """K flow steps of f'(r) = 2(r - 1) (χ²), gradients w.r.t. x only."""
    for _ in range(flow_steps):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad((2.0 * (net(x) - 1.0)).sum(), x)
        x = x - eta * g + nu * torch.randn_like(x)
    return x.detach()


def _to_torch_layout(torch, x: np.ndarray):
    x = np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x
    return torch.from_numpy(np.ascontiguousarray(x))


def torch_iteration(case: Case, variables, x_p_nhwc, seed: int):
    torch, net, opt, ema = torch_setup(case, variables, seed)
    x_p = _to_torch_layout(torch, x_p_nhwc)
    b = x_p.shape[0]

    def run():
        x0 = torch.randn_like(x_p)
        if case.image:
            x0.clamp_(-1.0, 1.0)
        x_k = torch_flow(torch, net, x0, case.k, case.eta, NU)
        out = net(torch.cat([x_k, x_p]))
        loss = 0.5 * out[b:].pow(2).mean() - out[:b].mean()  # LSIF
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema, net.parameters(), strict=True):
                pe.mul_(EMA).add_(p, alpha=1.0 - EMA)

    return run


def flow_parity(case: Case, variables, conv_grad: str, x0) -> float:
    """Relative difference of x_K (two deterministic steps, ν = 0) between fdrl-jax and
    PyTorch with the same weights: both programs compute the same thing."""
    net = case.net(conv_grad)
    pot = flows.make_potential(net.apply, variables, divergences.chi2_fprime)
    xj = np.asarray(flows.flow(pot, jnp.asarray(x0), jax.random.PRNGKey(0), 2, case.eta, 0.0))
    torch, tnet, _, _ = torch_setup(case, variables, 0)
    xt = torch_flow(torch, tnet, _to_torch_layout(torch, x0), 2, case.eta, 0.0).numpy()
    xt = np.transpose(xt, (0, 2, 3, 1)) if xt.ndim == 4 else xt
    return float(np.linalg.norm(xj - xt) / np.linalg.norm(xt - x0))


# ---------------------------------------------------------------------------------- pieces


FORWARD, INPUT_GRAD, LOOPED = "forward (B)", "input gradient (B), top level", "in-loop"
PARAM_GRAD, ADAM = "parameter gradient of the loss (2B)", "Adam update"


def jax_pieces(case: Case, conv_grad: str, x_p, seed: int) -> tuple[dict, dict]:
    """({piece: callable that blocks}, the convolutions of the compiled pieces by layout)."""
    net, state, _ = jax_setup(case, conv_grad, seed)
    jit = functools.partial(jax.jit, compiler_options=jax_options(conv_grad, net))
    v = apply_spectral_norms(state.variables)  # as the flow holds them
    b = x_p.shape[0]
    fprime = divergences.chi2_fprime

    def input_grad(v, x):
        return jax.grad(lambda y: jnp.sum(fprime(net.apply(v, y))))(x)

    def looped(v, x):
        return jax.lax.fori_loop(0, case.k, lambda _, y: y - case.eta * input_grad(v, y), x)

    def param_grad(v, x):
        def loss(params):
            out = net.apply({**v, "params": params}, x)
            return divergences.lsif_loss(out[:b], out[b:])

        return jax.grad(loss)(v["params"])

    x2 = jnp.concatenate([x_p, x_p])
    fwd, ig, lp, pg = (jit(f) for f in (net.apply, input_grad, looped, param_grad))
    tx, _ = algorithms.make_optimizer(LR)
    sv = state.variables
    grads = pg(sv, x2)
    adam = jit(lambda g, s, p: tx.update(g, s, p))
    fns = {
        FORWARD: lambda: fwd(v, x_p).block_until_ready(),
        INPUT_GRAD: lambda: ig(v, x_p).block_until_ready(),
        LOOPED: lambda: lp(v, x_p).block_until_ready(),
        PARAM_GRAD: lambda: jax.block_until_ready(pg(sv, x2)),
        ADAM: lambda: jax.block_until_ready(adam(grads, state.opt_state, sv["params"])),
    }
    census = {
        "input gradient, top level": conv_census(ig.lower(v, x_p).compile().as_text()),
        "input gradient, in a loop": conv_census(lp.lower(v, x_p).compile().as_text()),
        "parameter gradient": conv_census(pg.lower(sv, x2).compile().as_text()),
    }
    return fns, census


def torch_pieces(case: Case, variables, x_p_nhwc, seed: int) -> dict:
    """{piece: callable}; there is no loop to compile, so the in-loop step is the same call."""
    torch, net, opt, _ = torch_setup(case, variables, seed)
    x = _to_torch_layout(torch, x_p_nhwc)
    x2 = torch.cat([x, x])
    b = x.shape[0]

    def forward():
        with torch.no_grad():
            net(x)

    def input_grad():
        y = x.detach().requires_grad_(True)
        torch.autograd.grad((2.0 * (net(y) - 1.0)).sum(), y)

    def param_grad():
        out = net(x2)
        loss = 0.5 * out[b:].pow(2).mean() - out[:b].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()

    param_grad()
    return {FORWARD: forward, INPUT_GRAD: input_grad, PARAM_GRAD: param_grad, ADAM: opt.step}


def profile(case: Case, grads: list[str], x_p: np.ndarray, variables) -> None:
    a = ARGS
    fns, census = {}, {}
    for g in grads:
        with conv_grad_variant(g):
            pieces, census[g] = jax_pieces(case, g, jnp.asarray(x_p), a.seed)
            for f in pieces.values():
                f()  # compiles inside the block
        fns.update({(g, k): f for k, f in pieces.items()})
    if not a.no_torch:
        fns.update(
            {("pytorch", k): f for k, f in torch_pieces(case, variables, x_p, a.seed).items()}
        )
    ms = interleaved(fns, a.repeats)
    cols = [*grads, *([] if a.no_torch else ["pytorch"])]
    print(f"\nPieces of {case.title}, ms (median of {a.repeats}, interleaved):")
    print(f"  {'piece':<46}" + "".join(f"{c if c == 'pytorch' else 'jax ' + c:>12}" for c in cols))
    for piece in (FORWARD, INPUT_GRAD, LOOPED, PARAM_GRAD, ADAM):
        name = f"input gradient (B), per step of a {case.k}-step loop"
        row = f"  {name if piece == LOOPED else piece:<46}"
        for c in cols:
            key = (c, INPUT_GRAD if (c == "pytorch" and piece == LOOPED) else piece)
            per = case.k if (c != "pytorch" and piece == LOOPED) else 1
            row += f"{ms[key] / per:12.1f}"
        print(row)
    print("\nConvolutions in the compiled programs, by dim_labels (HWIO kernel = 01io):")
    for g in grads:
        for prog, c in census[g].items():
            print(f"  jax conv_grad={g:<5} {prog:<28} {c}")


def main() -> None:
    a = ARGS
    grads = [g for g in a.conv_grad.split(",") if g]
    cases = [Case(n) for n in a.cases.split(",") if n]
    import torch

    if a.threads == 1:
        torch.set_num_threads(1)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({os.cpu_count()} cores), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; median of {a.repeats} after a warm-up"
    )
    rows = []
    for case in cases:
        x_p = case.data(a.seed)
        fns, variables = {}, None
        for g in grads:
            t = time.perf_counter()
            with conv_grad_variant(g):
                run, variables, hlo = jax_iteration(case, g, jnp.asarray(x_p), a.seed)
                run()  # compiles
                if a.op_profile:
                    op_profile(run, hlo())
            print(f"  {case.title}: jax conv_grad={g} first call {time.perf_counter() - t:.1f} s")
            fns[f"fdrl-jax ({g})" if len(grads) > 1 else "fdrl-jax"] = run
        if not a.no_torch:
            fns["pytorch"] = torch_iteration(case, variables, x_p, a.seed)
            parity = flow_parity(case, variables, "auto", case.data(a.seed + 1))
            print(f"  flow parity (2 steps, ν = 0, same weights): rel. difference {parity:.1e}")
        ms = interleaved(fns, a.repeats)
        rows.append((case, ms))
        print(f"  {case.title}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in ms.items()), flush=True)
        if a.profile and case.image:
            profile(case, grads, x_p, variables)
    print("\n| case | PyTorch | " + " | ".join(k for k in rows[0][1] if k != "pytorch") +
          " | fdrl-jax speed |")  # fmt: skip
    print("|---|---|" + "---|" * (len(rows[0][1]) - 1) + "---|")
    for case, ms in rows:
        base = ms.get("pytorch")
        ours = [v for k, v in ms.items() if k != "pytorch"]
        speed = f"{base / ours[-1]:.2f}×" if base else "–"
        cells = " | ".join(f"{v:,.0f} ms" for v in ours)
        print(f"| {case.title} | {f'{base:,.0f} ms' if base else '–'} | {cells} | {speed} |")


if __name__ == "__main__":
    main()
