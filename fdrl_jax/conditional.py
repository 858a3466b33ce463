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

The composed potential is a `flows.Potential`, so conditional sampling is Algorithm 2 with it
(`algorithms.sample`; `sampler.Sampler(exp, potential=...)` for an experiment); labels are per
sample, so one batch can hold every class.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fdrl_jax import flows

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
) -> flows.Potential:
    """x ↦ f'(r_φ(x|y)) per sample, for the per-sample `labels` (B,). `classifier_fn(x)`
    returns logits (B, N); `output` is divergences.FPRIME_INPUT[divergence]."""
    net = flows.make_potential(apply_fn, variables, lambda o: o)  # x ↦ net output

    def potential(x: Array) -> Array:
        log_ratio = log_class_ratio(classifier_fn(x), labels)
        return fprime(compose_output(net(x), log_ratio, phi, output))

    return potential
