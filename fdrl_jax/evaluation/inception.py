"""Inception-v3 for FID in Flax: the TF 2015-12-05 network exactly as pytorch-fid runs it, or
torchvision's ImageNet Inception-v3 as the FDRL paper's FID code runs it.

FID numbers are only comparable when computed with the same network, so this module copies
pytorch-fid's `InceptionV3([3], resize_input=True, normalize_input=True,
use_fid_inception=True)`: bilinear resize to 299×299 (`F.interpolate(mode='bilinear',
align_corners=False)`, no antialiasing), the FID-specific blocks (average pools that ignore the
zero padding in Mixed_5b-d, 6b-e and 7b; a max pool in Mixed_7c), inference-mode BatchNorm with
eps=1e-3, and the 2048-d global average pool ("pool3") as output.

`pools="torchvision"` gives torchvision's `inception_v3` instead, whose blocks differ in their
pools only: every branch pool of Mixed_5b-7c is a 3×3 average that counts the zero padding
(`F.avg_pool2d`'s default), Mixed_7c's included. The paper's FID code feeds its blocks directly
(resize, then 2x − 1), so torchvision's `transform_input` is never applied; neither is it here.

Input convention: NHWC float images in [-1, 1] (pytorch-fid takes NCHW in [0, 1] and maps it to
[-1, 1] itself; uint8 images in [0, 255] map as `x / 127.5 - 1`). Any spatial size; it is
resized to 299×299 unless already that size.

The weights come from `inception_weights.resolve_inception_weights` (never downloaded at run
time); `features.make_inception_feature_fn` wraps network and weights into a feature function.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

Array = jax.Array
Variables = dict[str, Any]

INCEPTION_SIZE = 299

# ----------------------------------------------------------------------------------------------
# Resize


def resize_bilinear(x: Array, size: tuple[int, int]) -> Array:
    """NHWC bilinear resize matching `F.interpolate(mode='bilinear', align_corners=False)`.

    jax.image.resize uses the same half-pixel sample positions and edge clamping; with
    antialias off it agrees with torch to float32 rounding (~1e-7 up and down, checked in
    tests/test_inception.py). antialias=True, JAX's default, would blur downscaled inputs,
    which pytorch-fid does not do.
    """
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    shape = (x.shape[0], *size, x.shape[3])
    return jax.image.resize(
        x, shape, "bilinear", antialias=False, precision=jax.lax.Precision.HIGHEST
    )


# ----------------------------------------------------------------------------------------------
# Network


class ConvBN(nn.Module):
    """Conv (no bias) → BatchNorm (running stats, eps 1e-3) → ReLU: torchvision's BasicConv2d."""

    features: int
    kernel: tuple[int, int]
    strides: int = 1
    padding: tuple[int, int] = (0, 0)
    dtype: Any = jnp.float32
    precision: Any = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x: Array) -> Array:
        ph, pw = self.padding
        x = nn.Conv(
            self.features,
            self.kernel,
            strides=self.strides,
            padding=((ph, ph), (pw, pw)),
            use_bias=False,
            dtype=self.dtype,
            precision=self.precision,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, dtype=self.dtype, name="bn")(x)
        return nn.relu(x)


# The branch pools of the mixed blocks: "tf" (the TF-FID graph) or "torchvision".
POOLS = ("tf", "torchvision")


def _avg_pool_3x3(x: Array, pools: str = "tf") -> Array:
    # TF's average pool divides by the count of real (unpadded) pixels, torchvision's by 9.
    return nn.avg_pool(
        x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=pools == "torchvision"
    )


def _max_pool(x: Array, stride: int, pad: int = 0) -> Array:
    return nn.max_pool(x, (3, 3), (stride, stride), padding=((pad, pad), (pad, pad)))


class _Block(nn.Module):
    """Shared fields of the mixed blocks; `_c` makes a named ConvBN child."""

    dtype: Any = jnp.float32
    precision: Any = jax.lax.Precision.HIGHEST
    pools: str = "tf"  # one of POOLS

    def _c(self, name: str, features: int, kernel: int | tuple[int, int], **kw: Any) -> ConvBN:
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        p = kw.pop("padding", 0)
        p = (p, p) if isinstance(p, int) else p
        return ConvBN(
            features, k, padding=p, dtype=self.dtype, precision=self.precision, name=name, **kw
        )


_ROW7, _COL7 = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
_ROW3, _COL3 = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))


class FIDInceptionA(_Block):
    pool_features: int = 32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = self._c
        b1 = c("branch1x1", 64, 1)(x)
        b5 = c("branch5x5_2", 64, 5, padding=2)(c("branch5x5_1", 48, 1)(x))
        bd = c("branch3x3dbl_1", 64, 1)(x)
        bd = c("branch3x3dbl_3", 96, 3, padding=1)(c("branch3x3dbl_2", 96, 3, padding=1)(bd))
        bp = c("branch_pool", self.pool_features, 1)(_avg_pool_3x3(x, self.pools))
        return jnp.concatenate([b1, b5, bd, bp], axis=-1)


class InceptionB(_Block):
    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = self._c
        b3 = c("branch3x3", 384, 3, strides=2)(x)
        bd = c("branch3x3dbl_1", 64, 1)(x)
        bd = c("branch3x3dbl_2", 96, 3, padding=1)(bd)
        bd = c("branch3x3dbl_3", 96, 3, strides=2)(bd)
        return jnp.concatenate([b3, bd, _max_pool(x, 2)], axis=-1)


class FIDInceptionC(_Block):
    channels_7x7: int = 128

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c, c7 = self._c, self.channels_7x7
        b1 = c("branch1x1", 192, 1)(x)
        b7 = c("branch7x7_1", c7, 1)(x)
        b7 = c("branch7x7_2", c7, **_ROW7)(b7)
        b7 = c("branch7x7_3", 192, **_COL7)(b7)
        bd = c("branch7x7dbl_1", c7, 1)(x)
        bd = c("branch7x7dbl_2", c7, **_COL7)(bd)
        bd = c("branch7x7dbl_3", c7, **_ROW7)(bd)
        bd = c("branch7x7dbl_4", c7, **_COL7)(bd)
        bd = c("branch7x7dbl_5", 192, **_ROW7)(bd)
        bp = c("branch_pool", 192, 1)(_avg_pool_3x3(x, self.pools))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_Block):
    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = self._c
        b3 = c("branch3x3_2", 320, 3, strides=2)(c("branch3x3_1", 192, 1)(x))
        b7 = c("branch7x7x3_1", 192, 1)(x)
        b7 = c("branch7x7x3_2", 192, **_ROW7)(b7)
        b7 = c("branch7x7x3_3", 192, **_COL7)(b7)
        b7 = c("branch7x7x3_4", 192, 3, strides=2)(b7)
        return jnp.concatenate([b3, b7, _max_pool(x, 2)], axis=-1)


class FIDInceptionE(_Block):
    """Mixed_7b (average pool, pytorch-fid's FIDInceptionE_1) or 7c (max pool, E_2); with
    torchvision's pools both average."""

    max_pool: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = self._c
        b1 = c("branch1x1", 320, 1)(x)
        b3 = c("branch3x3_1", 384, 1)(x)
        b3a, b3b = c("branch3x3_2a", 384, **_ROW3)(b3), c("branch3x3_2b", 384, **_COL3)(b3)
        bd = c("branch3x3dbl_1", 448, 1)(x)
        bd = c("branch3x3dbl_2", 384, 3, padding=1)(bd)
        bda, bdb = c("branch3x3dbl_3a", 384, **_ROW3)(bd), c("branch3x3dbl_3b", 384, **_COL3)(bd)
        # The TF graph max-pools in its last block (a quirk that FID inherited).
        if self.max_pool and self.pools == "tf":
            pooled = _max_pool(x, 1, pad=1)
        else:
            pooled = _avg_pool_3x3(x, self.pools)
        bp = c("branch_pool", 192, 1)(pooled)
        return jnp.concatenate([b1, b3a, b3b, bda, bdb, bp], axis=-1)


class InceptionV3FID(_Block):
    """pytorch-fid's FID Inception-v3 up to pool3: (B, H, W, 3) in [-1, 1] → (B, 2048); with
    `pools="torchvision"`, torchvision's Inception-v3 up to the same layer.

    `dtype` is the compute dtype (float32, or bfloat16 for speed at some cost in agreement with
    the reference); parameters stay float32. `precision` applies to the convolutions: HIGHEST by
    default so float32 runs do not fall back to TF32 on GPUs. Parameter names follow
    torchvision/pytorch-fid ('Mixed_5b/branch1x1/conv/kernel').
    """

    resize_input: bool = True

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected NHWC RGB images (B, H, W, 3), got shape {x.shape}")
        if self.pools not in POOLS:
            raise ValueError(f"pools must be one of {POOLS}, got {self.pools!r}")
        x = x.astype(jnp.float32)
        if self.resize_input:
            x = resize_bilinear(x, (INCEPTION_SIZE, INCEPTION_SIZE))
        x = x.astype(self.dtype)
        kw = dict(dtype=self.dtype, precision=self.precision, pools=self.pools)
        x = self._c("Conv2d_1a_3x3", 32, 3, strides=2)(x)
        x = self._c("Conv2d_2a_3x3", 32, 3)(x)
        x = self._c("Conv2d_2b_3x3", 64, 3, padding=1)(x)
        x = _max_pool(x, 2)
        x = self._c("Conv2d_3b_1x1", 80, 1)(x)
        x = self._c("Conv2d_4a_3x3", 192, 3)(x)
        x = _max_pool(x, 2)
        x = FIDInceptionA(pool_features=32, name="Mixed_5b", **kw)(x)
        x = FIDInceptionA(pool_features=64, name="Mixed_5c", **kw)(x)
        x = FIDInceptionA(pool_features=64, name="Mixed_5d", **kw)(x)
        x = InceptionB(name="Mixed_6a", **kw)(x)
        for name, c7 in (
            ("Mixed_6b", 128),
            ("Mixed_6c", 160),
            ("Mixed_6d", 160),
            ("Mixed_6e", 192),
        ):
            x = FIDInceptionC(channels_7x7=c7, name=name, **kw)(x)
        x = InceptionD(name="Mixed_7a", **kw)(x)
        x = FIDInceptionE(max_pool=False, name="Mixed_7b", **kw)(x)
        x = FIDInceptionE(max_pool=True, name="Mixed_7c", **kw)(x)
        # Adaptive average pool to 1×1 as in pytorch-fid, reduced in float32.
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


@functools.cache
def _expected_shapes_cached() -> tuple[tuple[tuple[str, ...], tuple[int, ...]], ...]:
    shapes = jax.eval_shape(
        InceptionV3FID(resize_input=False).init,
        jax.random.PRNGKey(0),
        jax.ShapeDtypeStruct((1, INCEPTION_SIZE, INCEPTION_SIZE, 3), jnp.float32),
    )
    return tuple((k, tuple(v.shape)) for k, v in traverse_util.flatten_dict(shapes).items())


def expected_shapes() -> dict[tuple[str, ...], tuple[int, ...]]:
    """Flat {('params', ..., 'kernel'): shape} of the model, traced once without allocating."""
    return dict(_expected_shapes_cached())
