"""ResNet density-ratio estimators for images (SPEC Table 3).

LeakyReLU(0.2), no normalisation, no conv bias. BasicBlock: conv3×3(stride s) → act → conv3×3
→ + shortcut (1×1 conv, stride s, when the shape changes) → act. Stem conv3×3 → act; head:
global mean pool → Dense(1) with bias. Options: spectral normalisation of every conv / dense
(its power-iteration state lives in the `batch_stats` collection: pass `update_stats=True`
once per training step and False inside a flow, so the weights are fixed during a flow), and
SAGAN self-attention after a chosen stage. Works for any image size and channel count.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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


def _apply(layer: nn.Module, x, spectral_norm: bool, update_stats: bool):
    """Call `layer` (created in the caller's compact scope), spectrally normalised if asked."""
    if spectral_norm:
        return nn.SpectralNorm(layer)(x, update_stats=update_stats)
    return layer(x)


class BasicBlock(nn.Module):
    features: int
    stride: int = 1
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        s, sn = (self.stride, self.stride), self.spectral_norm

        def conv(y, k, stride=(1, 1)):
            pad = "SAME" if k == 3 else "VALID"
            layer = nn.Conv(self.features, (k, k), stride, padding=pad, use_bias=False)
            return _apply(layer, y, sn, update_stats)

        h = _act(conv(x, 3, s))
        h = conv(h, 3)
        shortcut = x
        if self.stride != 1 or x.shape[-1] != self.features:
            shortcut = conv(x, 1, s)
        return _act(h + shortcut)


class SelfAttention(nn.Module):
    """SAGAN self-attention: 1×1 key/query/value C→C/8, output C/8→C, softmax over positions,
    y = γ·o + x with γ initialised to 0 (the block starts as the identity)."""

    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        b, h, w, c = x.shape
        inner = max(c // 8, 1)

        def proj(y, f, name):
            layer = nn.Conv(f, (1, 1), use_bias=False, name=name)
            return _apply(layer, y, self.spectral_norm, update_stats)

        q = proj(x, inner, "query").reshape(b, h * w, inner)
        k = proj(x, inner, "key").reshape(b, h * w, inner)
        v = proj(x, inner, "value").reshape(b, h * w, inner)
        attn = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", q, k), axis=-1)
        o = jnp.einsum("bqk,bkc->bqc", attn, v).reshape(b, h, w, inner)
        o = proj(o, c, "out")
        gamma = self.param("gamma", nn.initializers.zeros, ())
        return gamma * o + x


class ResNetEstimator(nn.Module):
    """Images (B, H, W, C) -> one scalar per image (B,). `arch` names a SPEC network; the other
    fields override it (or define a custom one when arch is "")."""

    arch: str = "cifar10"
    stem: int | None = None
    stages: Sequence[Sequence[int]] | None = None
    attention_after: int | None = None
    spectral_norm: bool | None = None

    def _spec(self) -> dict:
        base = dict(ARCHS[self.arch]) if self.arch else {}
        for key in ("stem", "stages", "attention_after", "spectral_norm"):
            if getattr(self, key) is not None:
                base[key] = getattr(self, key)
        if "stem" not in base or "stages" not in base:
            raise ValueError(
                f"Unknown ResNet arch {self.arch!r}; choose one of {sorted(ARCHS)} "
                "or give stem and stages."
            )
        return base

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        spec = self._spec()
        sn = bool(spec.get("spectral_norm", False))
        h = _act(_apply(nn.Conv(spec["stem"], (3, 3), use_bias=False), x, sn, update_stats))
        for i, (features, blocks, stride) in enumerate(spec["stages"]):
            for j in range(blocks):
                h = BasicBlock(features, stride if j == 0 else 1, sn)(h, update_stats)
            if spec.get("attention_after") == i:
                h = SelfAttention(sn)(h, update_stats)
        h = jnp.mean(h, axis=(1, 2))
        return _apply(nn.Dense(1), h, sn, update_stats)[:, 0]
