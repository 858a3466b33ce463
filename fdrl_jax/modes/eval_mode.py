"""`--mode=eval`: sample quality of the latest checkpoint's EMA params.

Vector data (2D toys, point clouds): energy distance, sliced W2, the classifier two-sample test
and k-NN support of model samples, prior draws and a second data draw, each against data.
Images: FID (against a stats file or the training data), FID against the total flow length
(paper Fig. 5) from the same chains in one pass, the paper's figures, and the digits
classifier's scores where the data are the digits.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fdrl_jax import parallel
from fdrl_jax.algorithms import draw_prior
from fdrl_jax.data import is_image_data, to_uint8
from fdrl_jax.data.toy import TOY_MODE_STD, TOY_MODES
from fdrl_jax.errors import ConfigError, MissingFileError
from fdrl_jax.evaluation import figures
from fdrl_jax.evaluation.digits_metrics import digits_scores
from fdrl_jax.evaluation.features import build_feature_fn
from fdrl_jax.evaluation.fid import (
    RunningStatistics,
    Statistics,
    compute_statistics,
    fid_from_statistics,
    load_named_statistics,
    save_statistics,
)
from fdrl_jax.evaluation.toy_metrics import c2st, compare, mode_coverage, support
from fdrl_jax.run import files, plotting
from fdrl_jax.run.checkpoints import restore_for_inference
from fdrl_jax.sampler import Sampler, chunks


def eval_mode(config, workdir: str) -> dict:
    """`evaluate_images` for image data, else `evaluate_vectors`."""
    exp, state = restore_for_inference(config, workdir)
    if is_image_data(exp.data):
        return evaluate_images(config, workdir, exp, state)
    return evaluate_vectors(config, workdir, exp, state)


def evaluate_vectors(config, workdir: str, exp, state) -> dict:
    """Vector data: model samples, prior draws and a second data draw, each against data, by
    energy distance, sliced W2, the classifier two-sample test and k-NN support; writes
    eval/toy_metrics.json and eval/toy_eval.png."""
    n, e = config.eval.num_samples, config.eval
    keys = jax.random.split(jax.random.PRNGKey(e.seed), 5)
    sampler = Sampler(exp, mesh=parallel.make_mesh())
    steps = sampler.num_steps
    model = parallel.to_host(sampler(state.ema_variables, keys[0], n))  # metrics on the host
    prior = draw_prior(exp.prior, keys[1], n, config.prior.clip)
    data, data2 = exp.data.sample(keys[2], n), exp.data.sample(keys[3], n)
    result = {
        "step": int(parallel.to_host(state.step)),
        "num_samples": n,
        "flow_steps": steps,
        "model_vs_data": compare(model, data, keys[4], e.num_projections),
        "prior_vs_data": compare(prior, data, keys[4], e.num_projections),
        "data_vs_data": compare(data2, data, keys[4], e.num_projections),
        "model_mean": np.asarray(jnp.mean(model, axis=0)).tolist(),
        "data_mean": np.asarray(jnp.mean(data, axis=0)).tolist(),
    }
    result["energy_ratio_model_over_prior"] = (
        result["model_vs_data"]["energy_distance"] / result["prior_vs_data"]["energy_distance"]
    )
    # The two-sample test and support metrics on the first c2st_samples of each set.
    m = min(e.c2st_samples, n)
    host = {k: np.asarray(v)[:m] for k, v in (("model", model), ("prior", prior), ("data2", data2))}
    ref = np.asarray(data)[:m]
    for name, x in host.items():
        key = "data_vs_data" if name == "data2" else f"{name}_vs_data"
        result[key]["c2st"] = c2st(x, ref, e.c2st_neighbors, e.c2st_folds, e.seed)
        result[key].update(support(x, ref))
    if config.data.name in TOY_MODES:
        modes, std = TOY_MODES[config.data.name](), TOY_MODE_STD[config.data.name]
        result["modes"] = {
            "model": mode_coverage(host["model"], modes, std),
            "data": mode_coverage(ref, modes, std),
        }
    out_dir = files.write_results(os.path.join(workdir, "eval"), "toy_metrics", result)
    if not parallel.is_main_process():
        return result
    plotting.panels(
        [
            ("prior", np.asarray(prior)),
            (f"model (K+κ={steps})", np.asarray(model)),
            ("data", np.asarray(data)),
        ],
        os.path.join(out_dir, "toy_eval.png"),
    )
    return result


def _statistics_of(config, path: str, unnamed_as: str) -> Statistics:
    """The statistics at `path`, refused unless `eval.feature_net` made them (a file that
    names no network counts as `unnamed_as`'s; "" = it must be stated)."""
    e = config.eval
    stats, stored = load_named_statistics(path)
    if stored and unnamed_as and stored != unnamed_as:
        raise ConfigError(
            f"{path} says its statistics are the {stored!r} network's features, but "
            f"eval.fid_stats_net = {unnamed_as!r}; leave eval.fid_stats_net empty."
        )
    made_by = stored or unnamed_as
    if not made_by:
        raise ConfigError(
            f"{path} does not say which feature network made it: set eval.fid_stats_net to "
            "it (torchvision for the FDRL authors' <dataset>_stats.npz, inception for "
            "pytorch-fid's)."
        )
    if made_by != e.feature_net:
        raise ConfigError(
            f"{path} holds statistics of the {made_by!r} feature network, but "
            f"eval.feature_net = {e.feature_net!r}: FIDs across two networks mean nothing; set "
            f"eval.feature_net = {made_by} or give statistics of {e.feature_net}."
        )
    return stats


def reference_statistics(config, exp, feature_fn, workdir: str) -> tuple[Statistics, str]:
    """The FID reference: `eval.fid_stats` (a pytorch-fid style .npz) if given, else the clean
    training images (the first `eval.reference_samples`; 0 = all), computed once and stored in
    eval/ under a name that says which feature net and how many images. Statistics of another
    network than `eval.feature_net` are refused (`_statistics_of`)."""
    e = config.eval
    if e.fid_stats:
        if not files.exists(e.fid_stats):
            raise MissingFileError(
                f"No FID statistics at eval.fid_stats={e.fid_stats!r}; give a .npz with `mu` "
                "and `sigma`, or leave it empty to use the training data."
            )
        return _statistics_of(config, e.fid_stats, e.fid_stats_net), e.fid_stats
    limit = min(e.reference_samples or len(exp.data), len(exp.data))
    path = os.path.join(workdir, "eval", f"reference_stats_{e.feature_net}_{limit}.npz")
    if files.exists(path):  # an older cached file names no network; its file name does
        return _statistics_of(config, path, e.feature_net), path
    stats = compute_statistics(
        exp.data.clean_batches(e.batch_size), feature_fn, e.batch_size, max_samples=limit
    )
    if parallel.is_main_process():
        save_statistics(path, stats, feature_net=e.feature_net)
    return stats, path


def evaluate_images(config, workdir: str, exp, state) -> dict:
    """Score eval.num_samples samples of the EMA params; write eval/fid.json,
    eval/fid_vs_flow_length.{json,png}, the figures, and eval/image_metrics.json."""
    c, e = config, config.eval
    out = os.path.join(workdir, "eval")
    main = parallel.is_main_process()
    sampler = Sampler(exp, mesh=parallel.make_mesh(), clip_output=True)  # samples are images
    base = sampler.num_steps
    lengths = sorted({base, *(int(v) for v in e.fid_lengths)})
    variables = state.ema_variables
    key = jax.random.PRNGKey(e.seed)

    feature_fn = build_feature_fn(e, exp.shape) if e.fid else None
    if feature_fn is not None:  # before sampling: another network's statistics are refused
        ref, ref_path = reference_statistics(c, exp, feature_fn, workdir)
    running = {n: RunningStatistics() for n in lengths}
    # The first samples (final length) are kept for the figures and the digits scores, so
    # nothing is sampled twice.
    n, done, kept, keep = e.num_samples, 0, [], 1000 if c.data.name == "digits" else 64
    for k, m in chunks(key, n, e.batch_size):
        _, traj = sampler(variables, k, m, num_steps=max(lengths), record_at=lengths)
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
        by_length = {n_: fid_from_statistics(running[n_].finalize(), ref) for n_ in lengths}
        result["fid"] = by_length[base]
        result["fid_reference"] = ref_path
        result["fid_vs_flow_length"] = {str(k): v for k, v in by_length.items()}
        fields = ("step", "num_samples", "flow_steps", "feature_net", "fid", "fid_reference")
        files.write_results(out, "fid", {k: result[k] for k in fields})
        fields = ("feature_net", "fid_reference", "fid_vs_flow_length")
        files.write_results(out, "fid_vs_flow_length", {k: result[k] for k in fields})
        if main:
            path = os.path.join(out, "fid_vs_flow_length.png")
            plotting.fid_vs_length(by_length, path, f"FID ({e.feature_net} features)")
    if c.data.name == "digits":
        result["digits"] = digits_scores(kept)
        prior = np.asarray(draw_prior(exp.prior, key, len(kept), c.prior.clip))
        result["digits_prior"] = digits_scores(prior)
    if e.figures and main:
        write_figures(c, exp, variables, kept[:64], feature_fn, out)
    files.write_results(out, "image_metrics", result)
    return result


def write_figures(config, exp, variables, samples, feature_fn, out: str) -> None:
    """Flow strips, prior interpolation, prior samples and nearest neighbours (PNG). Process 0
    alone draws them, on its own devices (no collective the others would have to join)."""
    c = config
    key = jax.random.PRNGKey(c.eval.seed + 1)
    sampler = Sampler(exp, clip_output=True)
    total = sampler.num_steps
    marks = sorted({round(total * t / 8) for t in range(9)})
    _, traj = sampler(variables, key, 8, record_at=marks)
    plotting.save_grid_png(
        figures.strip_grid(np.asarray(traj)), os.path.join(out, "flow_strips.png")
    )

    starts = figures.interpolation_starts(exp.prior, key, 6, 8, c.prior.clip)
    ends = sampler.flow(variables, starts, key)
    plotting.save_grid_png(
        figures.make_grid(to_uint8(np.asarray(ends)), ncol=8),
        os.path.join(out, "interpolation.png"),
    )
    prior = draw_prior(exp.prior, key, 64, c.prior.clip)
    plotting.save_grid_png(
        figures.make_grid(to_uint8(np.asarray(prior))),
        os.path.join(out, "prior_samples.png"),
    )

    bank = np.concatenate(list(exp.data.clean_batches(1000)))[: c.eval.neighbour_bank]
    queries = samples[:8]
    pixel = figures.nearest_neighbours(queries, bank, 5, lambda x: x)
    plotting.save_grid_png(
        figures.neighbours_grid(queries, bank, pixel), os.path.join(out, "nearest_pixel.png")
    )
    if feature_fn is not None:
        feat = figures.nearest_neighbours(queries, bank, 5, lambda x: np.asarray(feature_fn(x)))
        plotting.save_grid_png(
            figures.neighbours_grid(queries, bank, feat), os.path.join(out, "nearest_features.png")
        )
