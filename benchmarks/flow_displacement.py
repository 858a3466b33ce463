"""How far the training flow moves particles per step, and where: the per-step drift
displacement |Δx| = η |∇ₓ f'(r(x_k))| (the drift, the noise left out) of every particle at every
flow step, at several points of a training run, with the estimated ratio r at each particle.

    python benchmarks/flow_displacement.py --config=configs/swissroll.py:lsif-chi2 \
        [--config=configs/swissroll.py:lr-kl ...] --at=500,2000,6000 --out=runs/disp/sr \
        [--set flow.eta=0.2 --set flow.nu=0.02] [--figure=disp.png]

Each `--config` (the same `--set` overrides applied to all) trains one run. At each step
count in `--at` it flows `--particles` prior draws K steps with the live params
(what the training step sees), and prints quantiles of |Δx| over all particles and steps, the
share of steps longer than `--long`, the median |Δx| in bins of r, and the C2ST (k-NN, as
`--mode=eval`) of 5,000 EMA samples (K + κ steps) against 5,000 data points. Writes
`displacement.json` and `displacement.png` (every visited position coloured by the length of
the step taken from it, over the data) into `--out`. Not run by CI.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import json
import os
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fdrl_jax import algorithms, configlib, divergences, flows, trainer
from fdrl_jax.evaluation.toy_metrics import c2st
from fdrl_jax.experiment import build_experiment
from fdrl_jax.sampler import Sampler

R_BINS = (0.0, 0.5, 2.0, 10.0, np.inf)


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        path, _, text = item.partition("=")
        try:
            out[path] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[path] = text
    return out


def probe(exp, variables, key, n: int) -> dict:
    """The training flow from n prior draws with `variables`: every frame, the drift from it
    and the ratio there."""
    c = exp.config
    k_prior, k_flow = jax.random.split(key)
    x0 = algorithms.draw_prior(exp.prior, k_prior, n, c.prior.clip)
    potential = flows.make_potential(exp.apply_fn, variables, exp.fprime)
    K, eta = c.flow.num_steps, flows.config_step_size(c)
    _, traj = flows.flow(
        potential,
        x0,
        k_flow,
        K,
        eta,
        c.flow.nu,
        record_at=np.arange(K + 1),
    )

    def frame(x):
        step = -eta * jax.grad(lambda y: jnp.sum(potential(y)))(x)  # the drift
        out = exp.apply_fn(variables, x)
        r = out if divergences.LOSS_OUTPUT[c.loss] == "ratio" else jnp.exp(out)
        return jnp.linalg.norm(step, axis=-1), r

    step, r = jax.jit(jax.vmap(frame))(traj)
    return {
        "traj": np.asarray(traj),
        "step": np.asarray(step[:-1]),
        "r": np.asarray(r[:-1]),
        "r_end": np.asarray(r[-1]),
    }


def kde_log_ratio(x: np.ndarray, q: np.ndarray, p: np.ndarray, bandwidth: float) -> np.ndarray:
    """log(q̂(x) / p̂(x)) with Gaussian kernel density estimates of the sets q and p."""

    def log_density(pts):
        d2 = np.sum((x[:, None, :] - pts[None, :, :]) ** 2, axis=-1) / (2 * bandwidth**2)
        m = d2.min(1, keepdims=True)
        return -m[:, 0] + np.log(np.mean(np.exp(-(d2 - m)), axis=1))

    return log_density(q) - log_density(p)


def estimator_accuracy(p: dict, data: np.ndarray, bandwidth: float) -> dict:
    """How well the net's ratio at the flowed particles x_K tracks a density estimate of
    q_K / p (Spearman correlation of the logs; for LSIF log max(r, 1e-3)), and the
    spread of each."""
    xk = p["traj"][-1]
    kde = kde_log_ratio(xk, xk, data, bandwidth)
    net = np.log(np.maximum(p["r_end"], 1e-3))
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    rho = float(np.corrcoef(rank(kde), rank(net))[0, 1])
    return {
        "spearman_net_vs_kde": rho,
        "kde_log_ratio_p10_p90": [float(v) for v in np.quantile(kde, [0.1, 0.9])],
        "net_log_ratio_p10_p90": [float(v) for v in np.quantile(net, [0.1, 0.9])],
    }


def summarise(p: dict, long: float) -> dict:
    step, r = p["step"], p["r"]
    q = np.quantile(step, [0.5, 0.9, 0.99, 0.999])
    K = step.shape[0]
    early = step[: max(1, K // 10)]
    bins = {}
    for lo, hi in itertools.pairwise(R_BINS):
        sel = (r >= lo) & (r < hi) if lo > 0 else (r < hi)
        bins[f"r<{hi}" if lo == 0 else f"{lo}<=r<{hi}"] = {
            "share": float(np.mean(sel)),
            "median_step": float(np.median(step[sel])) if sel.any() else None,
        }
    return {
        "p50": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "p999": float(q[3]),
        "max": float(step.max()),
        "share_long": float(np.mean(step > long)),
        "p99_first_tenth": float(np.quantile(early, 0.99)),
        "p99_rest": float(np.quantile(step[max(1, K // 10) :], 0.99)) if K > 1 else None,
        "r_bins": bins,
        "r_p01": float(np.quantile(r, 0.01)),
        "r_p99": float(np.quantile(r, 0.99)),
    }


def picture(rows: list[tuple[str, list[tuple[int, dict]]]], data: np.ndarray, path: str) -> None:
    ncol = max(len(probes) for _, probes in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3 * ncol, 3.2 * len(rows)), squeeze=False)
    for (title, probes), ax_row in zip(rows, axes, strict=True):
        for ax, (at, p) in zip(ax_row, probes, strict=False):
            sc = _panel(ax, at, p, data, title)
    fig.colorbar(sc, ax=axes.ravel().tolist(), label="log10 |Δx| per flow step", shrink=0.8)
    fig.savefig(path, dpi=60, bbox_inches="tight")
    plt.close(fig)


def _panel(ax, at: int, p: dict, data: np.ndarray, title: str):
    pos = p["traj"][:-1].reshape(-1, 2)
    step = p["step"].reshape(-1)
    order = np.argsort(step)  # long steps drawn on top
    ax.scatter(data[:, 0], data[:, 1], s=1, c="0.8")
    sc = ax.scatter(
        pos[order, 0],
        pos[order, 1],
        s=1,
        c=np.log10(np.maximum(step[order], 1e-4)),
        cmap="viridis",
        vmin=-3,
        vmax=-1,
    )
    ax.set_xlim(-2.5, 2.5)
    ax.set_ylim(-2.5, 2.5)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}, step {at}", fontsize=8)
    return sc


def measure(path: str, args) -> tuple[list[dict], list[tuple[int, dict]], np.ndarray, dict]:
    """Train the config at `path` (with `args.set`) to the last of `args.at`, probing on the
    way; returns the summaries, the probes, 5,000 data points and the run's settings."""
    c = configlib.load_config(path)
    configlib.override(c, parse_set(args.set))
    marks = sorted(int(a) for a in args.at.split(","))
    c.train.num_steps = max(marks)
    exp = build_experiment(c)
    if args.fprime == "log":
        lsif = divergences.LOSS_OUTPUT[c.loss] == "ratio"
        log_r = (lambda o: jnp.log(jnp.maximum(o, 1e-3))) if lsif else (lambda o: o)
        exp = dataclasses.replace(exp, fprime=log_r)
    step_fn = trainer.make_train_step(exp)
    batches = trainer.batches(exp)
    state = trainer.initial_state(exp)
    if args.output_bias:
        last = f"Dense_{c.model.num_hidden_layers + 1}"

        def shift(params):
            return {
                **params,
                last: {**params[last], "bias": params[last]["bias"] + args.output_bias},
            }

        state = state.replace(params=shift(state.params), ema_params=shift(state.ema_params))
    sample_fn = Sampler(exp)
    key = jax.random.PRNGKey(11)
    data = np.asarray(exp.data.sample(jax.random.PRNGKey(12), 5000))
    out = os.path.join(args.out, path.partition(":")[2] or "default")
    os.makedirs(out, exist_ok=True)
    print(f"{path} {' '.join(args.set)} (η in the flow {flows.config_step_size(c):g})")
    results, probes, t0 = [], [], time.time()
    for at in marks:
        while int(state.step) < at:
            state, _ = step_fn(state, batches.get(int(state.step)))
        p = probe(exp, state.variables, key, args.particles)
        s = summarise(p, args.long)
        model = np.asarray(sample_fn(state.ema_variables, jax.random.PRNGKey(13), 5000))
        s["c2st"] = c2st(model, data)
        s.update(estimator_accuracy(p, data, args.bandwidth))
        np.savez(os.path.join(out, f"samples_{at}.npz"), samples=model)
        s["train_step"] = at
        s["seconds"] = time.time() - t0
        results.append(s)
        probes.append((at, p))
        net, kde = s["net_log_ratio_p10_p90"], s["kde_log_ratio_p10_p90"]
        print(
            f"step {at}: |Δx| p50 {s['p50']:.4f} p90 {s['p90']:.4f} p99 {s['p99']:.4f} "
            f"p99.9 {s['p999']:.4f} max {s['max']:.3f}; p99 in the first tenth of the flow "
            f"{s['p99_first_tenth']:.4f}, after {s['p99_rest']:.4f}; "
            f"> {args.long}: {100 * s['share_long']:.2f}%; "
            f"r p01-p99 {s['r_p01']:.3f}-{s['r_p99']:.3f}; C2ST {s['c2st']:.3f}; "
            f"log ratio at x_K p10-p90: net [{net[0]:.3f}, {net[1]:.3f}], "
            f"KDE [{kde[0]:.3f}, {kde[1]:.3f}], Spearman {s['spearman_net_vs_kde']:.3f}",
            flush=True,
        )
        for name, b in s["r_bins"].items():
            med = "–" if b["median_step"] is None else f"{b['median_step']:.4f}"
            print(f"    {name}: {100 * b['share']:.1f}% of steps, median |Δx| {med}")
    meta = {
        "config": path,
        "set": args.set,
        "eta": flows.config_step_size(c),
        "K": c.flow.num_steps,
        "results": results,
    }
    with open(os.path.join(out, "displacement.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return results, probes, data, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", action="append", required=True, help="one run (row) each")
    ap.add_argument("--set", action="append", default=[], help="dotted.path=value, every run")
    ap.add_argument("--at", default="500,2000,6000")
    ap.add_argument("--particles", type=int, default=2000)
    ap.add_argument("--long", type=float, default=0.1, help="a long step, in data units")
    ap.add_argument("--bandwidth", type=float, default=0.05, help="KDE bandwidth, data units")
    ap.add_argument(
        "--fprime",
        default="",
        help="measurement only: 'log' flows every pairing along log r (LSIF: log max(r, 1e-3))",
    )
    ap.add_argument(
        "--output_bias",
        type=float,
        default=0.0,
        help="measurement only: added to the net's last bias at initialisation (1: r ≈ 1)",
    )
    ap.add_argument("--out", required=True)
    ap.add_argument("--figure", default="", help="the picture (default: --out/displacement.png)")
    args = ap.parse_args()
    rows, data = [], None
    for path in args.config:
        _, probes, data, meta = measure(path, args)
        rows.append((f"{path.partition(':')[2] or path}, η {meta['eta']:g}", probes))
    picture(rows, data, args.figure or os.path.join(args.out, "displacement.png"))


if __name__ == "__main__":
    main()
