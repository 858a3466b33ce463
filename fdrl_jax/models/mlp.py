"""The MLP estimator for 2D / vector data (SPEC Table 3): D→64, 3×(64→64), 64→1."""

from __future__ import annotations

import flax.linen as nn
import jax


class MLP(nn.Module):
    """Per-sample MLP with LeakyReLU(0.2); outputs one scalar per sample, shape (B,).

    No normalisation layers: each sample's output must depend on that sample alone, so the
    flow's gradient of the batch sum is the per-sample gradient.
    """

    hidden: int = 64
    num_hidden_layers: int = 3
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        h = nn.leaky_relu(nn.Dense(self.hidden)(h), self.negative_slope)
        for _ in range(self.num_hidden_layers):
            h = nn.leaky_relu(nn.Dense(self.hidden)(h), self.negative_slope)
        return nn.Dense(1)(h)[:, 0]
