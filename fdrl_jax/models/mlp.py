"""The MLP estimator for 2D / vector data (paper Appendix B, the authors' toy configuration):
D→64, 3×(64→64), 64→1.

Images are flattened. Layers are initialised as PyTorch's `nn.Linear` by default
(`param_init`, see `layers.py`). Optional spectral normalisation of every layer (state in
`batch_stats`, updated only with `update_stats=True`), e.g. for GAN discriminators.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from fdrl_jax.models import spectral
from fdrl_jax.models.layers import apply, dense


class MLP(nn.Module):
    """Per-sample MLP with LeakyReLU(0.2); outputs one scalar per sample, shape (B,).

    No normalisation layers: each sample's output must depend on that sample alone, so the
    flow's gradient of the batch sum is the per-sample gradient. Layers are `Dense_0` (input)
    to `Dense_{num_hidden_layers + 1}` (output): the reference's `mlp.0, mlp.2, ...`.
    """

    hidden: int = 64
    num_hidden_layers: int = 3
    negative_slope: float = 0.2
    spectral_norm: bool | None = None
    param_init: str = "torch"
    output_bias: float = 0.0  # added to the output layer's initial bias

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        sn = bool(self.spectral_norm) and not spectral.is_applied(self)
        h = x.reshape(x.shape[0], -1)
        for i in range(self.num_hidden_layers + 2):
            last = i == self.num_hidden_layers + 1
            layer = dense(
                1 if last else self.hidden,
                h.shape[-1],
                param_init=self.param_init,
                bias_offset=self.output_bias if last else 0.0,
                name=f"Dense_{i}",
            )
            h = apply(layer, h, sn, update_stats)
            if not last:
                h = nn.leaky_relu(h, self.negative_slope)
        return h[:, 0]
