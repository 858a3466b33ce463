"""Classifiers p(y|x) for class-conditional sampling (paper Sec. 6.4), optionally robust.

The paper composes FDRL with an adversarially robust classifier (ResNet-50, L2 PGD, ε = 1):
a plain classifier's input gradients are noise-like, so the flow follows them into
adversarial patterns instead of class features. Robust weights cannot be downloaded here, so
this module trains one on the run's own labelled data:

- `Classifier`: a small CNN or MLP returning logits (no normalisation layers, so each sample's
  logits, and their input gradient, depend on that sample alone). Smooth activations (swish)
  give smoother input gradients for the flow to follow. Any Flax module returning logits can
  guide the flow instead (see `conditional.py`).
- `l2_pgd`: projected gradient ascent on the cross-entropy in an L2 ball of radius ε per image
  (Madry et al. 2018), the attack the robust classifier is trained against.
- `train_step` (pure) and `train_classifier` (the loop). `--mode=classifier`, and saving and
  loading a classifier's params, are in `modes/classifier_mode.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from fdrl_jax import loop
from fdrl_jax.errors import ConfigError
from fdrl_jax.models import conv_vjp

Array = jax.Array
ApplyFn = Callable[[object, Array], Array]  # (params, x) -> logits (B, N)


class Classifier(nn.Module):
    """Images (B, H, W, C) (or vectors) -> logits (B, num_classes).

    cnn: a 3×3 conv per entry of `features` (stride 1 for the first, 2 after), then a dense
    layer of `hidden` units; mlp: the dense layer on the flattened input. Swish activations.
    """

    num_classes: int
    kind: str = "cnn"
    features: Sequence[int] = (32, 64)
    hidden: int = 128

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.kind not in ("cnn", "mlp"):
            raise ConfigError(f"Unknown classifier {self.kind!r}; choose 'cnn' or 'mlp'.")
        h = x
        if self.kind == "cnn":
            if h.ndim != 4:
                raise ValueError(f"The cnn classifier needs images (B, H, W, C); got {h.shape}.")
            for i, f in enumerate(self.features):
                stride = 1 if i == 0 else 2
                # conv_vjp: its input gradient (PGD, the conditional flow) runs in loops
                conv = nn.Conv(
                    f,
                    (3, 3),
                    (stride, stride),
                    padding="SAME",
                    conv_general_dilated=conv_vjp.conv_general_dilated,
                )
                h = nn.swish(conv(h))
        h = h.reshape(h.shape[0], -1)
        h = nn.swish(nn.Dense(self.hidden)(h))
        return nn.Dense(self.num_classes, name="logits")(h)


def build_classifier(cfg, num_classes: int) -> Classifier:
    """The classifier `cfg` (= config.classifier) describes, for `num_classes` classes."""
    return Classifier(
        num_classes=int(num_classes),
        kind=cfg.name,
        features=tuple(int(f) for f in cfg.features),
        hidden=int(cfg.hidden),
    )


def cross_entropy(logits: Array, labels: Array) -> Array:
    """Per-sample cross-entropy (B,)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _per_sample_norm(x: Array) -> Array:
    """L2 norm of each sample, shaped to broadcast against x: (B, 1, ..., 1)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=tuple(range(1, x.ndim)), keepdims=True))
    return norm


def project_l2(delta: Array, eps: float) -> Array:
    """Each sample's perturbation scaled into the L2 ball of radius eps (unchanged inside)."""
    norm = _per_sample_norm(delta)
    return delta * jnp.minimum(1.0, eps / jnp.maximum(norm, 1e-12))


def l2_pgd(
    loss_fn: Callable[[Array], Array], x: Array, eps: float, steps: int, step_size: float
) -> Array:
    """x + δ with ‖δ‖₂ ≤ eps per sample that (locally) maximises `loss_fn` (x -> (B,) losses):
    `steps` normalised-gradient ascent steps of length `step_size`, each projected back onto
    the ball. Starts at δ = 0 (deterministic). No clamp to the pixel range: the flow's
    particles are not clamped either, so the classifier must be robust around them too.
    Gradients are stopped: training treats the attack as a fixed input."""
    x = jax.lax.stop_gradient(x)
    grad_fn = jax.grad(lambda z: jnp.sum(loss_fn(z)))

    def body(_, delta):
        g = grad_fn(x + delta)
        delta = delta + step_size * g / jnp.maximum(_per_sample_norm(g), 1e-12)
        return project_l2(delta, eps)

    delta = jax.lax.fori_loop(0, steps, body, jnp.zeros_like(x))
    return jax.lax.stop_gradient(x + delta)


def default_step_size(eps: float, steps: int, step_size: float = 0.0) -> float:
    """Madry et al.'s 2.5 ε / steps unless a step size is given."""
    return step_size if step_size > 0 else 2.5 * eps / max(steps, 1)


def adversarial(
    apply_fn: ApplyFn, params, x: Array, y: Array, eps: float, steps: int, step_size: float = 0.0
) -> Array:
    """x under the L2 PGD attack on the cross-entropy (x itself when eps = 0)."""
    if eps <= 0:
        return x
    size = default_step_size(eps, steps, step_size)
    return l2_pgd(lambda z: cross_entropy(apply_fn(params, z), y), x, eps, steps, size)


def train_step(
    params,
    opt_state,
    x: Array,
    y: Array,
    *,
    apply_fn: ApplyFn,
    tx: optax.GradientTransformation,
    adv_eps: float = 0.0,
    adv_steps: int = 7,
    adv_step_size: float = 0.0,
) -> tuple[object, object, dict[str, Array]]:
    """One optimiser step on the cross-entropy (pure). With adv_eps > 0 the batch is first
    replaced by its L2 PGD adversarial examples (adversarial training)."""
    x = adversarial(apply_fn, params, x, y, adv_eps, adv_steps, adv_step_size)

    def loss_of(p):
        logits = apply_fn(p, x)
        return jnp.mean(cross_entropy(logits, y)), logits

    (loss, logits), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
    return params, opt_state, {"loss": loss, "accuracy": accuracy}


def accuracy(
    apply_fn: ApplyFn,
    params,
    x: Array,
    y: Array,
    adv_eps: float = 0.0,
    adv_steps: int = 7,
    adv_step_size: float = 0.0,
    batch_size: int = 1000,
) -> float:
    """Accuracy on (x, y); with adv_eps > 0, under the L2 PGD attack of that radius."""

    @jax.jit
    def correct(params, xb, yb):
        xb = adversarial(apply_fn, params, xb, yb, adv_eps, adv_steps, adv_step_size)
        return jnp.sum(jnp.argmax(apply_fn(params, xb), -1) == yb)

    total = sum(
        int(correct(params, x[i : i + batch_size], y[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    )
    return total / max(len(x), 1)


def split_holdout(data, fraction: float, seed: int):
    """(train, held-out) subsets of an `ImageData` (a seeded permutation; held-out may be
    None when fraction is 0)."""
    n = len(data)
    perm = np.random.default_rng(seed).permutation(n)
    k = round(fraction * n)
    if k == 0:
        return data, None
    if k >= n:
        raise ConfigError(f"classifier.holdout = {fraction} leaves no training images of {n}.")
    hold, keep = np.sort(perm[:k]), np.sort(perm[k:])
    take = lambda idx: data.replace(images=data.images[idx], labels=data.labels[idx])  # noqa: E731
    return take(keep), take(hold)


def train_classifier(
    model: nn.Module,
    data,
    *,
    num_steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    adv_eps: float = 0.0,
    adv_steps: int = 7,
    adv_step_size: float = 0.0,
    log_every: int = 500,
):
    """Train `model` on `data` (an `ImageData` with labels: batches are drawn with its flips
    and dequantisation noise, inside the jitted step). Returns the params."""
    root = jax.random.PRNGKey(seed)
    params = model.init(jax.random.fold_in(root, 0), jnp.zeros((1, *data.shape)))["params"]
    tx = optax.adam(lr)
    opt_state = tx.init(params)
    step = functools.partial(
        train_step,
        apply_fn=lambda p, x: model.apply({"params": p}, x),
        tx=tx,
        adv_eps=adv_eps,
        adv_steps=adv_steps,
        adv_step_size=adv_step_size,
    )

    @jax.jit
    def step_fn(carry, i):
        params, opt_state, data = carry  # the data rides along: an argument, not a constant
        x, y = data.sample_with_labels(
            jax.random.fold_in(jax.random.fold_in(root, 1), i), batch_size
        )
        params, opt_state, metrics = step(params, opt_state, x, y)
        return (params, opt_state, data), metrics

    carry = (params, opt_state, data)
    return loop.fit(step_fn, carry, num_steps, log_every=log_every, name="classifier")[0]
