"""`--mode=eval` for image runs: FID (against a stats file or the training data), FID against
the total flow length (paper Fig. 5) from the same chains in one pass, the paper's figures, and
the digits classifier's scores where the data are the digits."""

from __future__ import annotations

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fdrl_jax import parallel
from fdrl_jax.data import to_uint8
from fdrl_jax.evaluation import figures
from fdrl_jax.evaluation.fid import (
    RunningStatistics,
    Statistics,
    compute_statistics,
    fid_from_statistics,
    load_statistics,
    save_statistics,
)
from fdrl_jax.plotting import make_grid, save_grid_png


class RandomFeatures(nn.Module):
    """A fixed random conv net standing in for Inception (`eval.feature_net = random`): fast,
    for smoke runs and tests; its FIDs are not comparable with anyone's."""

    @nn.compact
    def __call__(self, x):
        for f in (16, 32):
            x = nn.leaky_relu(nn.Conv(f, (3, 3), strides=(2, 2))(x), 0.2)
        return jnp.mean(x, axis=(1, 2))


def build_feature_fn(eval_cfg, shape):
    """images ([-1, 1] floats) -> (B, D) features, by `eval.feature_net`."""
    if eval_cfg.feature_net == "random":
        net = RandomFeatures()
        variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))
        apply = jax.jit(net.apply)
        return lambda x: apply(variables, jnp.asarray(x, jnp.float32))
    from fdrl_jax.evaluation.inception import make_inception_feature_fn

    fn = make_inception_feature_fn(weights_path=eval_cfg.inception_weights or None)
    if shape[-1] == 1:  # grey images: Inception reads RGB
        return lambda x: fn(jnp.repeat(jnp.asarray(x), 3, axis=-1))
    return fn


def reference_statistics(config, exp, feature_fn, workdir: str) -> tuple[Statistics, str]:
    """The FID reference: `eval.fid_stats` (a pytorch-fid style .npz) if given, else the clean
    training images (up to eval.num_samples), computed once and stored in eval/."""
    e = config.eval
    if e.fid_stats:
        if not os.path.exists(e.fid_stats):
            raise FileNotFoundError(
                f"No FID statistics at eval.fid_stats={e.fid_stats!r}; give a .npz with `mu` "
                "and `sigma`, or leave it empty to use the training data."
            )
        return load_statistics(e.fid_stats), e.fid_stats
    path = os.path.join(workdir, "eval", f"reference_stats_{e.feature_net}.npz")
    if os.path.exists(path):
        return load_statistics(path), path
    limit = min(e.num_samples, len(exp.data))
    stats = compute_statistics(
        exp.data.clean_batches(e.batch_size), feature_fn, e.batch_size, max_samples=limit
    )
    if parallel.is_main_process():
        save_statistics(path, stats)
    return stats, path


def run_image_eval(config, workdir: str) -> dict:
    """Score eval.num_samples samples of the EMA params; write eval/fid.json,
    eval/fid_vs_flow_length.{json,png}, the figures, and eval/image_metrics.json."""
    from fdrl_jax import sampling
    from fdrl_jax.train import restore_for_inference

    exp, state = restore_for_inference(config, workdir)
    c, e = config, config.eval
    out = os.path.join(workdir, "eval")
    os.makedirs(out, exist_ok=True)
    main = parallel.is_main_process()
    base = c.flow.num_steps + c.flow.kappa
    lengths = sorted({base, *(int(v) for v in e.fid_lengths)} if e.fid_lengths else {base})
    mesh = parallel.make_mesh()
    sample_fn = sampling.make_sample_fn(exp, max(lengths), record_at=lengths, mesh=mesh)
    variables = state.ema_variables
    key = jax.random.PRNGKey(e.seed)

    feature_fn = build_feature_fn(e, exp.shape) if e.fid else None
    running = {n: RunningStatistics() for n in lengths}
    # The first samples (final length) are kept for the figures and the digits scores, so
    # nothing is sampled twice.
    n, done, kept, keep = e.num_samples, 0, [], 1000 if c.data.name == "digits" else 64
    for i, start in enumerate(range(0, n, e.batch_size)):
        m = min(e.batch_size, n - start)
        _, traj = sample_fn(variables, jax.random.fold_in(key, i), m)
        traj = jnp.clip(traj, -1.0, 1.0)  # samples become images
        if feature_fn is not None:
            for j, length in enumerate(lengths):
                running[length].update(np.asarray(feature_fn(traj[j])))
        if done < keep:
            kept.append(np.asarray(parallel.to_host(traj[lengths.index(base)][: keep - done])))
        done += m
        logging.info("eval: sampled and scored %d/%d", done, n)

    kept = np.concatenate(kept)
    result = {
        "step": int(parallel.to_host(state.step)),
        "num_samples": n,
        "flow_steps": base,
        "feature_net": e.feature_net if e.fid else None,
    }
    if feature_fn is not None:
        ref, ref_path = reference_statistics(c, exp, feature_fn, workdir)
        by_length = {n_: fid_from_statistics(running[n_].finalize(), ref) for n_ in lengths}
        result["fid"] = by_length[base]
        result["fid_reference"] = ref_path
        result["fid_vs_flow_length"] = {str(k): v for k, v in by_length.items()}
        if main:
            with open(os.path.join(out, "fid.json"), "w") as f:
                fields = (
                    "step",
                    "num_samples",
                    "flow_steps",
                    "feature_net",
                    "fid",
                    "fid_reference",
                )
                json.dump({k: result[k] for k in fields}, f, indent=2)
            with open(os.path.join(out, "fid_vs_flow_length.json"), "w") as f:
                json.dump(result["fid_vs_flow_length"], f, indent=2)
            _plot_fid_vs_length(by_length, os.path.join(out, "fid_vs_flow_length.png"))
    if c.data.name == "digits":
        from fdrl_jax.evaluation.digits_metrics import digits_scores

        result["digits"] = digits_scores(kept)
        prior = np.asarray(sampling.draw_prior(exp.prior, key, len(kept), c.prior.clip))
        result["digits_prior"] = digits_scores(prior)
    if e.figures and main:
        write_figures(c, exp, variables, kept[:64], feature_fn, out)
    logging.info("eval: %s", json.dumps(result))
    if main:
        with open(os.path.join(out, "image_metrics.json"), "w") as f:
            json.dump(result, f, indent=2)
    return result


def _plot_fid_vs_length(by_length: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(list(by_length), list(by_length.values()), "o-")
    ax.set_xlabel("total flow length (K + κ)")
    ax.set_ylabel("FID")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_figures(config, exp, variables, samples, feature_fn, out: str) -> None:
    """Flow strips, prior interpolation, prior samples and nearest neighbours (PNG)."""
    from fdrl_jax import sampling

    c = config
    key = jax.random.PRNGKey(c.eval.seed + 1)
    total = c.flow.num_steps + c.flow.kappa
    marks = sorted({round(total * t / 8) for t in range(9)})
    strip_fn = sampling.make_sample_fn(exp, total, record_at=marks)
    _, traj = strip_fn(variables, key, 8)
    save_grid_png(figures.strip_grid(np.asarray(traj)), os.path.join(out, "flow_strips.png"))

    starts = figures.interpolation_starts(exp.prior, key, 6, 8, c.prior.clip)
    potential = sampling.flow_lib.make_potential(exp.apply_fn, variables, exp.fprime)
    flow = jax.jit(
        lambda x0: sampling.flow_lib.flow(potential, x0, key, total, c.flow.eta, c.flow.nu)
    )
    ends = jnp.clip(flow(starts), -1, 1)
    save_grid_png(
        make_grid(to_uint8(np.asarray(ends)), ncol=8),
        os.path.join(out, "interpolation.png"),
    )
    prior = sampling.draw_prior(exp.prior, key, 64, c.prior.clip)
    save_grid_png(
        make_grid(to_uint8(np.asarray(prior))),
        os.path.join(out, "prior_samples.png"),
    )

    bank = np.concatenate(list(exp.data.clean_batches(1000)))[: c.eval.neighbour_bank]
    queries = samples[:8]
    pixel = figures.nearest_neighbours(queries, bank, 5, lambda x: x)
    save_grid_png(
        figures.neighbours_grid(queries, bank, pixel), os.path.join(out, "nearest_pixel.png")
    )
    if feature_fn is not None:
        feat = figures.nearest_neighbours(queries, bank, 5, lambda x: np.asarray(feature_fn(x)))
        save_grid_png(
            figures.neighbours_grid(queries, bank, feat), os.path.join(out, "nearest_features.png")
        )
