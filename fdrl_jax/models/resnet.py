"""ResNet density-ratio estimators for images (paper Table 3; docs/networks.md), computing what
the reference's do.

LeakyReLU(0.2), no normalisation, no conv bias. BasicBlock: conv3×3(stride s) → act → conv3×3
→ + shortcut (1×1 conv, stride s, when the shape changes) → act. Stem conv3×3 → act; head:
global mean pool → Dense(1) with bias. Every 3×3 conv pads 1 pixel on each side and layers are
initialised as PyTorch does by default (`param_init`, see `layers.py`). Options: spectral
normalisation of every conv / dense (its power-iteration state lives in the `batch_stats`
collection: pass `update_stats=True` once per training step and False otherwise, so the
weights are fixed during a flow, which normalises them once: `spectral.py`), and SAGAN
self-attention (1×1 convs with biases) after a chosen stage. Works for any image size and
channel count.

Module names follow the reference's state dict (`conv1`, `layer{i}.{j}.conv1/conv2/
shortcut_conv` as `layer{i}_{j}`, `self_attn_module.{query,key,value,self_att,gamma}`,
`linear`), so its checkpoints map onto these params name for name.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from fdrl_jax.errors import ConfigError
from fdrl_jax.models import spectral
from fdrl_jax.models.layers import apply, conv, dense

# (channels, blocks, first stride) per stage; attention after the stage with this index.
ARCHS: dict[str, dict] = {
    "cifar10": {
        "stem": 128,
        "stages": ((128, 3, 1), (256, 3, 2), (256, 3, 2), (256, 3, 2)),
        "attention_after": None,
        "spectral_norm": True,
    },
    "celeba64": {
        "stem": 64,
        "stages": ((64, 1, 2), (128, 2, 2), (256, 2, 2), (256, 2, 2)),
        "attention_after": None,
        "spectral_norm": False,
    },
    "church128": {
        "stem": 64,
        "stages": ((64, 1, 2), (128, 1, 2), (128, 2, 2), (256, 2, 2), (256, 2, 2)),
        "attention_after": None,
        "spectral_norm": False,
    },
    "cat2dog": {
        "stem": 64,
        "stages": ((64, 1, 2), (128, 1, 2), (128, 1, 2), (256, 1, 2)),
        "attention_after": 1,
        "spectral_norm": True,
    },
}


def _act(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, 0.2)


class BasicBlock(nn.Module):
    features: int
    stride: int = 1
    spectral_norm: bool = False
    param_init: str = "torch"
    conv_grad: str = "auto"

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        sn, init = self.spectral_norm, self.param_init
        kw = {"param_init": init, "conv_grad": self.conv_grad}
        c_in = x.shape[-1]
        layer = conv(self.features, 3, c_in, self.stride, **kw, name="conv1")
        h = _act(apply(layer, x, sn, update_stats))
        layer = conv(self.features, 3, self.features, **kw, name="conv2")
        h = apply(layer, h, sn, update_stats)
        shortcut = x
        if self.stride != 1 or c_in != self.features:
            layer = conv(self.features, 1, c_in, self.stride, **kw, name="shortcut_conv")
            shortcut = apply(layer, x, sn, update_stats)
        return _act(h + shortcut)


class SelfAttention(nn.Module):
    """SAGAN self-attention: 1×1 convs (with biases) key/query/value C→C/8, output C/8→C,
    softmax over positions, y = γ·o + x with γ initialised to 0 (the block starts as the
    identity)."""

    spectral_norm: bool = False
    param_init: str = "torch"
    conv_grad: str = "auto"

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        b, h, w, c = x.shape
        inner = max(c // 8, 1)

        def proj(y, f, name):
            layer = conv(
                f,
                1,
                y.shape[-1],
                use_bias=True,
                param_init=self.param_init,
                conv_grad=self.conv_grad,
                name=name,
            )
            return apply(layer, y, self.spectral_norm, update_stats)

        q = proj(x, inner, "query").reshape(b, h * w, inner)
        k = proj(x, inner, "key").reshape(b, h * w, inner)
        v = proj(x, inner, "value").reshape(b, h * w, inner)
        attn = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", q, k), axis=-1)
        o = jnp.einsum("bqk,bkc->bqc", attn, v).reshape(b, h, w, inner)
        o = proj(o, c, "self_att")
        gamma = self.param("gamma", nn.initializers.zeros, ())
        return gamma * o + x


class ResNetEstimator(nn.Module):
    """Images (B, H, W, C) -> one scalar per image (B,). `arch` names a network of `ARCHS`; the
    other fields override it (or define a custom one when arch is ""). `conv_grad`: how the convs'
    input gradients are emitted (`conv_vjp`; "auto" is fast inside XLA:CPU loops)."""

    arch: str = "cifar10"
    stem: int | None = None
    stages: Sequence[Sequence[int]] | None = None
    attention_after: int | None = None
    spectral_norm: bool | None = None
    param_init: str = "torch"
    conv_grad: str = "auto"
    output_bias: float = 0.0  # added to the output layer's initial bias

    def _spec(self) -> dict:
        base = dict(ARCHS[self.arch]) if self.arch else {}
        for key in ("stem", "stages", "attention_after", "spectral_norm"):
            if getattr(self, key) is not None:
                base[key] = getattr(self, key)
        if "stem" not in base or "stages" not in base:
            raise ConfigError(
                f"Unknown ResNet arch {self.arch!r}; choose one of {sorted(ARCHS)} "
                "or give stem and stages."
            )
        return base

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        spec = self._spec()
        # variables from `spectral.apply_spectral_norms` (a flow's) hold normalised kernels
        sn = bool(spec.get("spectral_norm", False)) and not spectral.is_applied(self)
        init, cg = self.param_init, self.conv_grad
        stem = conv(spec["stem"], 3, x.shape[-1], param_init=init, conv_grad=cg, name="conv1")
        h = _act(apply(stem, x, sn, update_stats))
        for i, (features, blocks, stride) in enumerate(spec["stages"]):
            for j in range(blocks):
                block = BasicBlock(
                    features, stride if j == 0 else 1, sn, init, cg, name=f"layer{i + 1}_{j}"
                )
                h = block(h, update_stats)
            if spec.get("attention_after") == i:
                h = SelfAttention(sn, init, cg, name="self_attn_module")(h, update_stats)
        h = jnp.mean(h, axis=(1, 2))
        head = dense(1, h.shape[-1], param_init=init, bias_offset=self.output_bias, name="linear")
        return apply(head, h, sn, update_stats)[:, 0]
