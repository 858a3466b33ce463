"""FDRL's pieces worked out by hand (numpy, float64) for a linear estimator r(x) = w·x + b,
the reference the train-step and sampler tests compare against.

For a linear net the flow's force ∇ₓ f'(out(x)) is f''(out)·w, and the Bregman losses'
gradients with respect to (w, b) are sums over the batch; nothing here calls the package.
"""

import jax
import numpy as np
from flax import struct


@struct.dataclass
class FixedPrior:
    """A "prior" that returns the same points for any key, so a test knows x_0."""

    points: jax.Array

    def sample(self, key, n):
        del key
        return self.points[:n]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def fprime_slope(divergence: str, out: np.ndarray) -> np.ndarray:
    """d f'(out) / d out, with f' a function of the net output (the paper's Table 2)."""
    if divergence == "chi2":  # f' = 2r (the net outputs r)
        return np.full_like(out, 2.0)
    if divergence == "kl":  # f' = log r (the net outputs log r, as for JS and logD)
        return np.ones_like(out)
    if divergence == "js":  # f' = log σ(log r)
        return sigmoid(-out)
    if divergence == "logd":  # f' = −log σ(−log r)
        return sigmoid(out)
    raise ValueError(divergence)


def flow(
    divergence: str,
    w: np.ndarray,
    b: float,
    x: np.ndarray,
    steps: int,
    eta: float,
    nu: float = 0.0,
    noise=None,
):
    """`steps` flow steps x ← x − η ∇ₓ f'(w·x + b) + ν ξ_k, with ξ_k = noise[k] (none when
    ν = 0)."""
    for k in range(steps):
        x = x - eta * fprime_slope(divergence, x @ w + b)[:, None] * w[None, :]
        if nu:
            x = x + nu * noise[k]
    return x


def loss_and_output_grads(loss: str, out_q: np.ndarray, out_p: np.ndarray):
    """The Bregman loss of the outputs on flowed samples (q) and data (p), and its derivative
    with respect to each output."""
    nq, n_p = len(out_q), len(out_p)
    if loss == "lsif":  # E_p[r²]/2 − E_q[r]
        value = np.mean(0.5 * out_p**2) - np.mean(out_q)
        return value, -np.ones(nq) / nq, out_p / n_p
    if loss == "lr":  # E_p[softplus(out)] + E_q[softplus(−out)]: BCE, flowed = 1, data = 0
        value = np.mean(np.logaddexp(0, out_p)) + np.mean(np.logaddexp(0, -out_q))
        return value, -sigmoid(-out_q) / nq, sigmoid(out_p) / n_p
    raise ValueError(loss)


def train_step(loss, divergence, w, b, ema_w, ema_b, x0, x_p, *, steps, eta, ema_decay, clip):
    """Algorithm 1's iteration with ν = 0 and SGD at rate 1: clamp the prior draw (images),
    flow it with the current params, one gradient step on the loss, then the EMA."""
    start = np.clip(x0, -1.0, 1.0) if clip else x0
    x = flow(divergence, w, b, start, steps, eta)
    value, d_q, d_p = loss_and_output_grads(loss, x @ w + b, x_p @ w + b)
    g_w, g_b = x.T @ d_q + x_p.T @ d_p, d_q.sum() + d_p.sum()
    new_w, new_b = w - g_w, b - g_b
    return {
        "loss": value,
        "grad_norm": np.sqrt(np.sum(g_w**2) + g_b**2),
        "flow_dist": np.mean(np.linalg.norm(x - start, axis=1)),
        "w": new_w,
        "b": new_b,
        "ema_w": ema_decay * ema_w + (1 - ema_decay) * new_w,
        "ema_b": ema_decay * ema_b + (1 - ema_decay) * new_b,
    }
