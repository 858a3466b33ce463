"""3×3 stride-1 convolutions by Winograd's F(2×2, 3×3) (Lavin & Gray, 2016), NHWC / HWIO.

Each 2×2 block of outputs is read from a 4×4 tile of the (padded) input: transformed, the
tile's 16 values are multiplied by 16 transformed kernel values and summed over input
channels, a batched matrix product of 16 (tiles × C_in) by (C_in × C_out) matrices, then
transformed back. That is 16 multiply-adds per 4 outputs and channel pair instead of 36
(2.25× fewer); the transforms only add and subtract (and halve, for the kernel), and the
result agrees with the direct convolution to float32 rounding (measured against float64:
the same size of error). XLA:CPU runs the direct form on its own; cuDNN picks Winograd by
itself where it pays, so this is used on CPU only (`conv_vjp.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# G (4×3): the kernel transform, U = G w Gᵀ per (input, output) channel pair.
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)


def kernel_transform(w: jax.Array) -> jax.Array:
    """(3, 3, C_in, C_out) HWIO kernel -> (4, 4, C_in, C_out) transformed kernel."""
    g = jnp.asarray(_G, w.dtype)
    return jnp.einsum("ak,klio,bl->abio", g, w, g, precision=lax.Precision.HIGHEST)


def _windows(x: jax.Array, axis: int, n: int) -> jax.Array:
    """(..., 2n + 2, ...) -> (..., n, 4, ...): the windows of 4 at stride 2 along `axis`."""
    shape = x.shape
    pairs = x.reshape(*shape[:axis], n + 1, 2, *shape[axis + 1 :])
    first = lax.slice_in_dim(pairs, 0, n, axis=axis)
    second = lax.slice_in_dim(pairs, 1, n + 1, axis=axis)
    return jnp.concatenate([first, second], axis=axis + 1)


def _input_rows(t: jax.Array, axis: int) -> jax.Array:
    """Bᵀ along the tile axis `axis` (size 4): [d0 - d2, d1 + d2, d2 - d1, d1 - d3]."""
    d = [lax.index_in_dim(t, r, axis, keepdims=True) for r in range(4)]
    return jnp.concatenate([d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]], axis)


def conv3x3(x: jax.Array, u: jax.Array) -> jax.Array:
    """conv(x, w) with stride 1 and one pixel of zero padding on every side, for
    u = kernel_transform(w); x is (B, H, W, C_in), the result (B, H, W, C_out)."""
    b, h, w, c = x.shape
    th, tw = -(-h // 2), -(-w // 2)  # odd sizes: one more zero row / column, cropped after
    xp = jnp.pad(x, ((0, 0), (1, 1 + 2 * th - h), (1, 1 + 2 * tw - w), (0, 0)))
    v = _input_rows(_windows(xp, 1, th), 2)  # (B, th, 4, W + 2, C)
    v = _input_rows(_windows(v, 3, tw), 4)  # (B, th, 4, tw, 4, C)
    v = jnp.transpose(v, (2, 4, 0, 1, 3, 5)).reshape(16, b * th * tw, c)
    m = lax.dot_general(v, u.reshape(16, c, -1), (((2,), (1,)), ((0,), (0,))))
    m = m.reshape(4, 4, b, th, tw, -1)
    # Aᵀ m A with Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]], rows then columns
    s = jnp.stack([m[0] + m[1] + m[2], m[1] - m[2] - m[3]])
    y = jnp.stack([s[:, 0] + s[:, 1] + s[:, 2], s[:, 1] - s[:, 2] - s[:, 3]], 1)
    y = jnp.transpose(y, (2, 3, 0, 4, 1, 5)).reshape(b, 2 * th, 2 * tw, -1)
    return y[:, :h, :w]
