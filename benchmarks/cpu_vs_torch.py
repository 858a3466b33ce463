"""One FDRL training iteration of the CIFAR-10 estimator on CPU: JAX against PyTorch.

    python benchmarks/cpu_vs_torch.py [--batch=8] [--flow_steps=5] [--repeats=5]
        [--conv_grad=xla,auto] [--spectral_norm] [--profile] [--threads=1] [--xla_flags="..."]

An iteration is Algorithm 1 with LSIF-χ²: draw x0 ~ N(0, I) clamped to [-1, 1], flow it
K steps (x ← x − η ∇ₓ f'(r(x)) + ν ξ, η = 3, ν = 0.01), one Adam step on the LSIF loss
between x_K and a data batch, EMA update. JAX runs the package's `algorithms.train_step` (one jitted
program, state donated) once per `--conv_grad`: "xla" is JAX's own differentiation rule for the
convolutions (the old path), "auto" emits the flow's input-gradient convolutions in the layout
XLA:CPU runs fast inside a loop (`fdrl_jax/models/conv_vjp.py`). PyTorch runs the same network
(`interop/reference_nets.py`, NCHW) with the same weights, the flow written with
`torch.autograd.grad` on x. Both print ms per iteration (median of --repeats after a warm-up);
runs are interleaved so that load from other processes hits all of them alike.

`--profile` also times the pieces (forward, input gradient at top level and per step inside a
K-step loop, parameter gradient of the loss on 2×batch, the optimiser update) and counts the
convolutions of the compiled flow by kernel layout (`dim_labels`): the fast Eigen path needs
HWIO (`01io`) kernels, and XLA:CPU only rewrites other layouts into HWIO outside loops.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import time


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--flow_steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--conv_grad", default="xla,auto", help="comma-separated: xla (old), auto")
    p.add_argument("--spectral_norm", action="store_true", help="SN on (default off)")
    p.add_argument("--profile", action="store_true", help="also time the pieces")
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

from fdrl_jax import algorithms, divergences, flows  # noqa: E402
from fdrl_jax.models import ResNetEstimator  # noqa: E402
from fdrl_jax.priors import gaussian_prior  # noqa: E402

ETA, NU, LR, EMA = 3.0, 0.01, 1e-4, 0.998
SHAPE = (32, 32, 3)


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median ms of each fn, calls interleaved round-robin (shared-machine noise hits all)."""
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


def jax_setup(conv_grad: str, batch: int, flow_steps: int, seed: int):
    net = ResNetEstimator("cifar10", spectral_norm=ARGS.spectral_norm, conv_grad=conv_grad)
    tx, _ = algorithms.make_optimizer(LR)
    state = algorithms.init_state(
        net, tx, jax.random.PRNGKey(seed), jnp.zeros((1, *SHAPE), jnp.float32)
    )
    prior = gaussian_prior(SHAPE)

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
            num_flow_steps=flow_steps,
            eta=ETA,
            nu=NU,
            ema_decay=EMA,
            clip_prior=True,
            update_stats=update_stats,
        )

    return net, state, jax.jit(step, donate_argnums=0)


def jax_iteration(conv_grad: str, x_p, batch: int, flow_steps: int, seed: int):
    """(callable running one iteration and blocking, the initial variables)."""
    _, state, step = jax_setup(conv_grad, batch, flow_steps, seed)
    variables = jax.tree.map(np.asarray, state.variables)
    box = {"state": state, "i": 0}

    def run():
        key = jax.random.fold_in(jax.random.PRNGKey(seed + 1), box["i"])
        box["state"], metrics = step(box["state"], x_p, key)
        box["i"] += 1
        jax.block_until_ready(metrics)

    return run, variables


def jax_pieces(conv_grad: str, x_p, flow_steps: int, seed: int) -> tuple[dict, dict]:
    """({piece: callable that blocks}, the convolutions of the compiled pieces by layout)."""
    net, state, _ = jax_setup(conv_grad, x_p.shape[0], flow_steps, seed)
    v = state.variables
    b = x_p.shape[0]
    fprime = divergences.chi2_fprime

    def input_grad(v, x):
        return jax.grad(lambda y: jnp.sum(fprime(net.apply(v, y))))(x)

    def looped(v, x):
        return jax.lax.fori_loop(0, flow_steps, lambda _, y: y - ETA * input_grad(v, y), x)

    def param_grad(v, x):
        def loss(params):
            out = net.apply({**v, "params": params}, x)
            return divergences.lsif_loss(out[:b], out[b:])

        return jax.grad(loss)(v["params"])

    x2 = jnp.concatenate([x_p, x_p])
    fwd, ig, lp, pg = (jax.jit(f) for f in (net.apply, input_grad, looped, param_grad))
    tx, _ = algorithms.make_optimizer(LR)
    grads = pg(v, x2)
    adam = jax.jit(lambda g, s, p: tx.update(g, s, p))
    fns = {
        FORWARD: lambda: fwd(v, x_p).block_until_ready(),
        INPUT_GRAD: lambda: ig(v, x_p).block_until_ready(),
        LOOPED: lambda: lp(v, x_p).block_until_ready(),
        PARAM_GRAD: lambda: jax.block_until_ready(pg(v, x2)),
        ADAM: lambda: jax.block_until_ready(adam(grads, state.opt_state, v["params"])),
    }
    census = {
        "input gradient, top level": conv_census(ig.lower(v, x_p).compile().as_text()),
        "input gradient, in a loop": conv_census(lp.lower(v, x_p).compile().as_text()),
        "parameter gradient": conv_census(pg.lower(v, x2).compile().as_text()),
    }
    return fns, census


FORWARD, INPUT_GRAD, LOOPED = "forward (B)", "input gradient (B), top level", "in-loop"
PARAM_GRAD, ADAM = "parameter gradient of the loss (2B)", "Adam update"


# ------------------------------------------------------------------------------------ PyTorch


def torch_setup(variables, batch: int, seed: int):
    import torch

    from fdrl_jax.interop import reference_nets, state_dict

    if ARGS.threads == 1:
        torch.set_num_threads(1)
    cfg = ml_collections.ConfigDict(
        {"name": "resnet", "arch": "cifar10", "spectral_norm": ARGS.spectral_norm}
    )
    net = reference_nets.build_reference_net(cfg, SHAPE)
    sd = state_dict.to_state_dict(variables)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=False)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(0.9, 0.999))
    ema = [p.detach().clone() for p in net.parameters()]
    torch.manual_seed(seed)
    return torch, net, opt, ema


def torch_flow(torch, net, x, flow_steps: int, nu: float):
    """K flow steps of f'(r) = 2(r - 1) (χ²), gradients w.r.t. x only."""
    for _ in range(flow_steps):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad((2.0 * (net(x) - 1.0)).sum(), x)
        x = x - ETA * g + nu * torch.randn_like(x)
    return x.detach()


def torch_iteration(variables, x_p_nhwc, flow_steps: int, seed: int):
    torch, net, opt, ema = torch_setup(variables, x_p_nhwc.shape[0], seed)
    x_p = torch.from_numpy(np.ascontiguousarray(np.transpose(x_p_nhwc, (0, 3, 1, 2))))
    b = x_p.shape[0]

    def run():
        x0 = torch.randn_like(x_p).clamp_(-1.0, 1.0)
        x_k = torch_flow(torch, net, x0, flow_steps, NU)
        out = net(torch.cat([x_k, x_p]))
        loss = 0.5 * out[b:].pow(2).mean() - out[:b].mean()  # LSIF
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema, net.parameters(), strict=True):
                pe.mul_(EMA).add_(p, alpha=1.0 - EMA)

    return run


def torch_pieces(variables, x_p_nhwc, seed: int) -> dict:
    """{piece: callable}; there is no loop to compile, so the in-loop step is the same call."""
    torch, net, opt, _ = torch_setup(variables, x_p_nhwc.shape[0], seed)
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(x_p_nhwc, (0, 3, 1, 2))))
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


def flow_parity(variables, conv_grad: str, x0_nhwc) -> float:
    """Relative difference of x_K (one deterministic flow, ν = 0) between JAX and PyTorch
    with the same weights: both programs compute the same thing."""
    net = ResNetEstimator("cifar10", spectral_norm=ARGS.spectral_norm, conv_grad=conv_grad)
    pot = flows.make_potential(net.apply, variables, divergences.chi2_fprime)
    xj = np.asarray(flows.flow(pot, jnp.asarray(x0_nhwc), jax.random.PRNGKey(0), 2, ETA, 0.0))
    torch, tnet, _, _ = torch_setup(variables, x0_nhwc.shape[0], 0)
    xt = torch.from_numpy(np.ascontiguousarray(np.transpose(x0_nhwc, (0, 3, 1, 2))))
    xt = np.transpose(torch_flow(torch, tnet, xt, 2, 0.0).numpy(), (0, 2, 3, 1))
    return float(np.linalg.norm(xj - xt) / np.linalg.norm(xt - x0_nhwc))


def main() -> None:
    a = ARGS
    grads = [g for g in a.conv_grad.split(",") if g]
    rng = np.random.default_rng(a.seed)
    x_p = rng.uniform(-1, 1, (a.batch, *SHAPE)).astype(np.float32)
    print(
        f"batch {a.batch}, K = {a.flow_steps}, spectral norm {'on' if a.spectral_norm else 'off'}, "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({os.cpu_count()} cores), "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    fns, variables = {}, None
    for g in grads:
        t = time.perf_counter()
        run, variables = jax_iteration(g, jnp.asarray(x_p), a.batch, a.flow_steps, a.seed)
        run()  # compile
        print(f"  jax conv_grad={g}: first call (compile + run) {time.perf_counter() - t:.1f} s")
        fns[f"jax, conv_grad={g}"] = run
    if not a.no_torch:
        import torch

        run = torch_iteration(variables, x_p, a.flow_steps, a.seed)  # sets the thread count
        fns[f"pytorch {torch.__version__} ({torch.get_num_threads()} threads)"] = run
        print(
            f"  flow parity (2 steps, ν = 0, same weights): relative difference of the "
            f"displacement, JAX vs PyTorch: {flow_parity(variables, grads[-1], x_p):.1e}"
        )
    ms = interleaved(fns, a.repeats)
    print(f"\nms per training iteration (median of {a.repeats}, interleaved):")
    base = next((v for k, v in ms.items() if k.startswith("pytorch")), None)
    for k, v in ms.items():
        ratio = f"  ({v / base:.2f}× PyTorch)" if base else ""
        print(f"  {k:<40} {v:9.0f}{ratio}")

    if a.profile:
        profile(grads, x_p, variables)


def profile(grads: list[str], x_p: np.ndarray, variables) -> None:
    a = ARGS
    fns, census = {}, {}
    for g in grads:
        pieces, census[g] = jax_pieces(g, jnp.asarray(x_p), a.flow_steps, a.seed)
        fns.update({(g, k): f for k, f in pieces.items()})
    if not a.no_torch:
        fns.update({("pytorch", k): f for k, f in torch_pieces(variables, x_p, a.seed).items()})
    ms = interleaved(fns, a.repeats)
    cols = [*grads, *([] if a.no_torch else ["pytorch"])]
    print(f"\nPieces, ms (median of {a.repeats}, interleaved); B = {a.batch}:")
    print(
        f"  {'piece':<46}" + "".join(f"{('jax ' + c) if c != 'pytorch' else c:>12}" for c in cols)
    )
    for piece in (FORWARD, INPUT_GRAD, LOOPED, PARAM_GRAD, ADAM):
        name = f"input gradient (B), per step of a {a.flow_steps}-step loop"
        row = f"  {name if piece == LOOPED else piece:<46}"
        for c in cols:
            key = (c, INPUT_GRAD if (c == "pytorch" and piece == LOOPED) else piece)
            per = a.flow_steps if (c != "pytorch" and piece == LOOPED) else 1
            row += f"{ms[key] / per:12.0f}"
        print(row)
    print("\nConvolutions in the compiled programs, by dim_labels (HWIO kernel = 01io):")
    for g in grads:
        for prog, c in census[g].items():
            print(f"  jax conv_grad={g:<5} {prog:<28} {c}")


if __name__ == "__main__":
    main()
