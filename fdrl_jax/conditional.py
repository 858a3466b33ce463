"""Class-conditional sampling by composing density ratios (paper Sec. 6.4, Eq. 12 / 29-31).

A classifier is a density ratio: N p(y=n|x) = p(x|y=n) / p(x). Dividing the unconditional
estimator r(x) ≈ q(x)/p(x) by it gives the conditional one,
    r(x|y=n) = r(x) / (N p(y=n|x)),   log r(x|y=n) = log r(x) − log N − log p(y=n|x),
and the flow of f'(r(x|y=n)) samples class n. Following Eq. 31, φ scales the classifier's
log-ratio so its gradient is comparable to the estimator's:
    log r_φ(x|y) = log r(x) − φ (log N + log p(y|x)).
φ scales log N too (the paper's Eq. 31 drops it because it does not change the KL gradient):
then φ = 1 is Eq. 12 exactly, φ = 0 the unconditional flow exactly for every pairing, and for
LR-KL the update is Eq. 31's x − η ∇(log r − φ log p(y|x)) (with the code's η for the paper's
2η). For LSIF-χ² the net outputs r itself (possibly ≤ 0, so no log of it is taken):
r_φ(x|y) = r(x) · (N p(y|x))^(−φ).

The composed potential is a `flow.Potential`, so conditional sampling is `flow.flow` with it;
labels are per sample, so one batch can hold every class.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fdrl_jax import divergences, parallel, sampling
from fdrl_jax import flow as flow_lib

Array = jax.Array


def log_class_ratio(logits: Array, labels: Array) -> Array:
    """log(N p(y|x)) per sample = log p(x|y)/p(x): the classifier as a log density ratio."""
    log_p = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), labels[:, None], -1)[:, 0]
    return log_p + jnp.log(logits.shape[-1])


def compose_output(out: Array, log_ratio: Array, phi: float, output: str) -> Array:
    """The conditional estimator's output from the unconditional one's: divide the ratio by
    (N p(y|x))^φ. `output` is what the net outputs: "ratio" (LSIF) or "log_ratio" (LR)."""
    if output == "ratio":
        return out * jnp.exp(-phi * log_ratio)
    if output == "log_ratio":
        return out - phi * log_ratio
    raise ValueError(f"Unknown estimator output {output!r}; 'ratio' or 'log_ratio'.")


def make_conditional_potential(
    apply_fn: Callable,
    variables,
    fprime: Callable[[Array], Array],
    output: str,
    classifier_fn: Callable[[Array], Array],
    labels: Array,
    phi: float,
) -> flow_lib.Potential:
    """x ↦ f'(r_φ(x|y)) per sample, for the per-sample `labels` (B,). `classifier_fn(x)`
    returns logits (B, N); `output` is divergences.FPRIME_INPUT[divergence]."""
    net = flow_lib.make_potential(apply_fn, variables, lambda o: o)  # x ↦ net output

    def potential(x: Array) -> Array:
        log_ratio = log_class_ratio(classifier_fn(x), labels)
        return fprime(compose_output(net(x), log_ratio, phi, output))

    return potential


def conditional_sample(
    apply_fn: Callable,
    variables,
    classifier_apply: Callable,
    classifier_params,
    prior,
    key: Array,
    labels: Array,
    *,
    fprime: Callable,
    output: str,
    phi: float,
    num_steps: int,
    eta: float,
    nu: float,
    clip_prior: bool = False,
    clip_output: bool = False,
    constrain: Callable[[Array], Array] = lambda x: x,
) -> Array:
    """Algorithm 2 with the composed ratio: one sample per entry of `labels` (B,), drawn from
    the prior and flowed `num_steps` (K + κ) steps. `classifier_apply(params, x)` -> logits.
    `constrain` lays the batch out over devices (`parallel.batch_constraint`)."""
    k_prior, k_flow = jax.random.split(key)
    x0 = constrain(sampling.draw_prior(prior, k_prior, labels.shape[0], clip_prior))
    labels = constrain(labels)
    potential = make_conditional_potential(
        apply_fn,
        variables,
        fprime,
        output,
        lambda x: classifier_apply(classifier_params, x),
        labels,
        phi,
    )
    x = flow_lib.flow(potential, x0, k_flow, num_steps, eta, nu)
    return jnp.clip(x, -1.0, 1.0) if clip_output else x


def make_conditional_sample_fn(
    exp, classifier_apply: Callable, phi: float, num_steps: int | None = None, mesh=None
) -> Callable[[object, object, Array, Array], Array]:
    """jitted (variables, classifier_params, key, labels) -> samples for an experiment;
    default K + κ steps. On a `mesh` the batch is sharded over its devices (the labels are
    padded to a multiple of the device count; the first len(labels) samples are returned,
    the same as on one device)."""
    c = exp.config
    steps = c.flow.num_steps + c.flow.kappa if num_steps is None else num_steps
    fn = functools.partial(
        conditional_sample,
        exp.apply_fn,
        classifier_apply=classifier_apply,
        fprime=exp.fprime,
        output=divergences.FPRIME_INPUT[c.divergence],
        phi=phi,
        num_steps=steps,
        eta=c.flow.eta,
        nu=c.flow.nu,
        clip_prior=c.prior.clip,
        clip_output=c.sample.clip_output,
        **({"constrain": parallel.batch_constraint(mesh)} if mesh is not None else {}),
    )
    jitted = jax.jit(
        lambda v, cp, prior, key, labels: fn(
            v, classifier_params=cp, prior=prior, key=key, labels=labels
        )
    )
    ndev = 1 if mesh is None else mesh.size

    def sample_fn(v, cp, key, labels):
        labels = np.asarray(labels, np.int32)
        n = labels.shape[0]
        padded = np.pad(labels, (0, -(-n // ndev) * ndev - n), mode="edge")
        return jitted(v, cp, exp.prior, key, jnp.asarray(padded))[:n]

    return sample_fn


def sample_label(
    sample_fn: Callable, variables, classifier_params, key: Array, label: int, n: int, batch: int
) -> np.ndarray:
    """n samples of one class on the host, `batch` at a time (batch i uses fold_in(key, i))."""
    chunks = []
    for i, start in enumerate(range(0, n, batch)):
        m = min(batch, n - start)
        labels = np.full((m,), label, np.int32)
        k = key if n <= batch else jax.random.fold_in(key, i)
        chunks.append(np.asarray(sample_fn(variables, classifier_params, k, labels)))
    return np.concatenate(chunks)


def run_conditional_sample(config, workdir: str) -> dict:
    """`--mode=conditional`: `conditional.num_samples` samples of each requested class
    (`conditional.label`, or every class) from the latest checkpoint's EMA params composed
    with the classifier at `classifier.path`. Writes eval/conditional/samples_label{y}.npz
    (`samples`, uint8 `images`, `label`), grid_label{y}.png, grid_all.png (a row per class)
    and metrics.json (the guiding classifier's accuracy on the samples; for the digits also
    the real-digits logistic regression's, an independent judge)."""
    from fdrl_jax import classifier as clf_lib
    from fdrl_jax import plotting
    from fdrl_jax.data import is_image_data, to_uint8
    from fdrl_jax.train import restore_for_inference

    cc = config.conditional
    exp, state = restore_for_inference(config, workdir)
    if not is_image_data(exp.data):
        raise ValueError("--mode=conditional needs an image dataset with labels.")
    path = clf_lib.classifier_path(config, workdir)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No classifier at {path}: train one with --mode=classifier (same --workdir), or "
            "set --config.classifier.path to a params .npz."
        )
    classifier_apply, classifier_params = clf_lib.load_classifier(config.classifier, path)
    num_classes = int(classifier_params["logits"]["kernel"].shape[-1])
    if cc.label >= num_classes:
        raise ValueError(
            f"conditional.label = {cc.label} but the classifier has {num_classes} classes."
        )
    labels = list(range(num_classes)) if cc.label < 0 else [cc.label]
    # the reference flows n_flow_steps + 10 steps for conditional samples
    steps = cc.num_steps if cc.num_steps is not None else config.flow.num_steps + 10
    sample_fn = make_conditional_sample_fn(
        exp, classifier_apply, cc.phi, steps, mesh=parallel.make_mesh()
    )
    key = jax.random.PRNGKey(cc.seed)
    out = os.path.join(workdir, "eval", "conditional")
    main = parallel.is_main_process()
    if main:
        os.makedirs(out, exist_ok=True)
    judge = None
    if config.data.name == "digits":
        from fdrl_jax.evaluation.digits_metrics import digits_classifier, to_digit_pixels

        judge = lambda x: digits_classifier().predict(to_digit_pixels(x))  # noqa: E731
    step = int(parallel.to_host(state.step))
    result = {"step": step, "phi": cc.phi, "flow_steps": steps, "per_label": {}}
    rows = []
    for y in labels:
        x = sample_label(
            sample_fn,
            state.ema_variables,
            classifier_params,
            jax.random.fold_in(key, y),
            y,
            cc.num_samples,
            config.sample.batch_size,
        )
        if not np.all(np.isfinite(x)):
            # (N p(y|x))^(−φ) is unbounded as p -> 0: a large φ, or a confident non-robust
            # classifier, can make the flow's steps explode.
            raise FloatingPointError(
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
            np.savez(
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
        logging.info("conditional: label %d %s", y, json.dumps(entry))
    for name in ("guide_accuracy", "digits_logreg_accuracy"):
        values = [e[name] for e in result["per_label"].values() if name in e]
        if values:
            result[f"mean_{name}"] = float(np.mean(values))
    if main:
        width = min(len(r) for r in rows)
        grid = np.concatenate([r[:width] for r in rows])
        plotting.save_image_grid(grid, os.path.join(out, "grid_all.png"), ncol=width)
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump(result, f, indent=2)
    return result
