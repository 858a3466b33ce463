"""The MLP estimator for 2D / vector data (SPEC Table 3): D→64, 3×(64→64), 64→1.

Images are flattened. Optional spectral normalisation of every layer (state in `batch_stats`,
updated only with `update_stats=True`), e.g. for GAN discriminators.
"""

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
    spectral_norm: bool | None = None

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        def dense(h, features):
            layer = nn.Dense(features)
            if self.spectral_norm:
                return nn.SpectralNorm(layer)(h, update_stats=update_stats)
            return layer(h)

        h = x.reshape(x.shape[0], -1)
        h = nn.leaky_relu(dense(h, self.hidden), self.negative_slope)
        for _ in range(self.num_hidden_layers):
            h = nn.leaky_relu(dense(h, self.hidden), self.negative_slope)
        return dense(h, 1)[:, 0]
