"""`--mode=conditional`: class-conditional samples, the run's estimator composed with a
classifier inside the flow (paper Sec. 6.4)."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fdrl_jax import parallel, robust_resnet
from fdrl_jax.data import is_image_data, to_uint8
from fdrl_jax.errors import ConfigError, DataError, DivergenceError, MissingFileError
from fdrl_jax.evaluation.digits_metrics import digits_classifier, to_digit_pixels
from fdrl_jax.modes.classifier_mode import classifier_path, load_classifier
from fdrl_jax.run import files, plotting
from fdrl_jax.run.checkpoints import restore_for_inference
from fdrl_jax.sampler import conditional_sampler


def conditional_mode(config, workdir: str) -> dict:
    """`conditional.num_samples` samples of each requested class
    (`conditional.label`, or every class) from the latest checkpoint's EMA params composed
    with the classifier at `classifier.path`. Writes eval/conditional/samples_label{y}.npz
    (`samples`, uint8 `images`, `label`), grid_label{y}.png, grid_all.png (a row per class)
    and metrics.json (the guiding classifier's accuracy on the samples; for the digits also
    the real-digits logistic regression's, an independent judge)."""
    cc = config.conditional
    exp, state = restore_for_inference(config, workdir)
    if not is_image_data(exp.data):
        raise DataError("--mode=conditional needs an image dataset with labels.")
    path = classifier_path(config, workdir)
    if not files.exists(path):
        how = "train one with --mode=classifier (same --workdir), or"
        if config.classifier.name == robust_resnet.NAME:
            how = (
                "convert the robustness checkpoint with `python -m fdrl_jax.convert "
                "--from=robustness cifar_l2_1_0.pt OUT.npz` and"
            )
        raise MissingFileError(
            f"No classifier at {path}: {how} set --config.classifier.path to a params .npz."
        )
    classifier_apply, classifier_params = load_classifier(config.classifier, path)
    # the logits' shape on one image of the data (fails here if the classifier cannot read it)
    probe = jax.ShapeDtypeStruct((1, *exp.shape), jnp.float32)
    num_classes = int(jax.eval_shape(classifier_apply, classifier_params, probe).shape[-1])
    if cc.label >= num_classes:
        raise ConfigError(
            f"conditional.label = {cc.label} but the classifier has {num_classes} classes."
        )
    labels = list(range(num_classes)) if cc.label < 0 else [cc.label]
    # the reference flows n_flow_steps + 10 steps for conditional samples
    steps = cc.num_steps if cc.num_steps is not None else config.flow.num_steps + 10
    sampler = conditional_sampler(
        exp, classifier_apply, cc.phi, num_steps=steps, mesh=parallel.make_mesh()
    )
    key = jax.random.PRNGKey(cc.seed)
    out = os.path.join(workdir, "eval", "conditional")
    main = parallel.is_main_process()
    judge = None
    if config.data.name == "digits":
        judge = lambda x: digits_classifier().predict(to_digit_pixels(x))  # noqa: E731
    step = int(parallel.to_host(state.step))
    result = {"step": step, "phi": cc.phi, "flow_steps": steps, "per_label": {}}
    rows = []
    for y in labels:
        x = sampler.sample_many(
            (state.ema_variables, classifier_params),
            jax.random.fold_in(key, y),
            cc.num_samples,
            config.sample.batch_size,
            labels=np.full(cc.num_samples, y, np.int32),
        )
        if not np.all(np.isfinite(x)):
            # (N p(y|x))^(−φ) is unbounded as p -> 0: a large φ, or a confident non-robust
            # classifier, can make the flow's steps explode.
            raise DivergenceError(
                f"The conditional flow for label {y} diverged ({np.mean(~np.isfinite(x)):.0%} "
                f"non-finite values) with conditional.phi = {cc.phi} and flow.eta = "
                f"{config.flow.eta}; lower either (or use a robust classifier)."
            )
        pred = np.asarray(jnp.argmax(classifier_apply(classifier_params, jnp.asarray(x)), -1))
        entry = {"guide_accuracy": float(np.mean(pred == y))}
        if judge is not None:
            entry["digits_logreg_accuracy"] = float(np.mean(judge(x) == y))
        result["per_label"][str(y)] = entry
        rows.append(x[: cc.grid_size])
        if main:
            files.save_npz(
                os.path.join(out, f"samples_label{y}.npz"),
                samples=x,
                images=to_uint8(x),
                label=y,
                phi=cc.phi,
                step=step,
            )
            plotting.save_image_grid(
                x[: config.sample.grid_size], os.path.join(out, f"grid_label{y}.png")
            )
        logging.info("conditional: label %d %s", y, entry)
    for name in ("guide_accuracy", "digits_logreg_accuracy"):
        values = [e[name] for e in result["per_label"].values() if name in e]
        if values:
            result[f"mean_{name}"] = float(np.mean(values))
    if main:
        width = min(len(r) for r in rows)
        grid = np.concatenate([r[:width] for r in rows])
        plotting.save_image_grid(grid, os.path.join(out, "grid_all.png"), ncol=width)
    files.write_results(out, "metrics", result)
    return result
