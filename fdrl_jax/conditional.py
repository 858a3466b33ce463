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

The composed potential is a `flow_lib.Potential`, so conditional sampling is `flow_lib.flow`
with it; labels are per sample, so one batch can hold every class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax import divergences, flow_lib, parallel, sampling

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
    num_steps: int | Array,
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
    """jitted (variables, classifier_params, key, labels, num_steps=None) -> samples for an
    experiment; default `num_steps`, else K + κ steps (a run-time value: one compiled
    program serves every length). On a `mesh` the batch is sharded over its devices (the labels are
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
        eta=c.flow.eta,
        nu=c.flow.nu,
        clip_prior=c.prior.clip,
        clip_output=c.sample.clip_output,
        **({"constrain": parallel.batch_constraint(mesh)} if mesh is not None else {}),
    )
    jitted = jax.jit(
        lambda v, cp, prior, key, labels, steps: fn(
            v, classifier_params=cp, prior=prior, key=key, labels=labels, num_steps=steps
        )
    )
    ndev = 1 if mesh is None else mesh.size

    def sample_fn(v, cp, key, labels, num_steps=None):
        labels = np.asarray(labels, np.int32)
        n = labels.shape[0]
        padded = np.pad(labels, (0, -(-n // ndev) * ndev - n), mode="edge")
        n_steps = np.int32(steps if num_steps is None else num_steps)
        return jitted(v, cp, exp.prior, key, jnp.asarray(padded), n_steps)[:n]

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
