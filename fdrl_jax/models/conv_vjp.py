"""Convolutions in the forms XLA:CPU runs fast, with the same values and gradients.

The flow differentiates the estimator with respect to its input at every step, inside a
`lax.scan` / `fori_loop`; on CPU three things made that slow, each fixed here:

- layout: JAX writes a convolution's input gradient as a convolution with the kernel's input
  and output features swapped in the dimension numbers (`..._01oi->...`). XLA:CPU runs
  convolutions fast only with HWIO kernels, and its pass that inserts the transposes
  (`ConvCanonicalization`) visits the entry computation only, not loop bodies: inside the
  flow every input-gradient convolution took a generic path, 3-4× slower. Here the gradient
  is emitted with the kernel already reversed and transposed (`flipped`), as HWIO;
- strides: written as one convolution, the input gradient of a strided convolution dilates
  the cotangent with zeros, and XLA:CPU multiplies them too (s² times the forward's work in
  2-D, on a slower path). Here it is split by phase into stride-1 convolutions that skip them
  (`_strided_lhs_grad`);
- work repeated per step: XLA does not hoist the kernel's forms out of the loop (they would
  grow the loop's state), so a flow computes them once (`prepare_kernel`, read by
  `layers.Conv` from the `flow_kernels` collection) instead of at every step.
And 3×3 stride-1 convolutions with wide channels, forward and input gradient, use Winograd's
F(2×2, 3×3) (`winograd.py`): 2.25× fewer multiplications, the same result to float32
rounding.

This is done on CPU only (`lax.platform_dependent`); on other backends the forward is
`lax.conv_general_dilated` and the gradient JAX's own rule, which GPU compilers map to their
backward-data convolutions (cuDNN chooses Winograd by itself). The cost of `jax.custom_vjp`:
the function has no forward-mode derivative (`jax.jvp`, `jax.jacfwd`, `jax.hessian` raise).
Nothing in the package takes one; models built with `conv_grad="xla"` keep JAX's rules.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from fdrl_jax.models import winograd

Array = jax.Array

# Values of the `conv_grad` field of the estimators: "auto" is this module's forms on CPU,
# "xla" keeps `lax.conv_general_dilated` and JAX's differentiation rule.
CONV_GRADS = ("auto", "xla")
NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))
# Winograd paid on a 2-core CPU from 128 channels in and out (benchmarks/RESULTS.md).
WINOGRAD_MIN_CHANNELS = 128
# The strides whose input-gradient sub-kernels `prepare_kernel` computes ahead.
PREPARED_STRIDES = (2, 2)


def _pads(padding, lhs_shape, rhs_shape, strides, dn: lax.ConvDimensionNumbers):
    """Explicit (lo, hi) pairs per spatial dimension (resolves "SAME" / "VALID")."""
    if not isinstance(padding, str):
        return tuple((int(lo), int(hi)) for lo, hi in padding)
    in_sizes = [lhs_shape[d] for d in dn.lhs_spec[2:]]
    k_sizes = [rhs_shape[d] for d in dn.rhs_spec[2:]]
    return tuple(lax.padtype_to_pads(in_sizes, k_sizes, strides, padding))


def _transposed_dn(dn: lax.ConvDimensionNumbers) -> lax.ConvDimensionNumbers:
    """The input gradient's layout: the cotangent has the output's layout, dx the input's,
    and the kernel is (spatial..., O, I), HWIO of the transposed convolution."""
    n = len(dn.lhs_spec) - 2
    return lax.ConvDimensionNumbers(
        lhs_spec=dn.out_spec, rhs_spec=(n + 1, n, *range(n)), out_spec=dn.lhs_spec
    )


def flipped(rhs: Array, dn: lax.ConvDimensionNumbers) -> Array:
    """The kernel of the input gradient: reversed in space, (spatial..., O, I)."""
    spatial, out_feat, in_feat = dn.rhs_spec[2:], dn.rhs_spec[0], dn.rhs_spec[1]
    return lax.transpose(lax.rev(rhs, spatial), (*spatial, out_feat, in_feat))


def _winograd_applies(lhs_shape, rhs_shape, dtype, strides, pads, dn, min_channels) -> bool:
    """A 3×3, stride-1, 1-padded NHWC/HWIO float32 convolution with wide enough channels."""
    return (
        dn == NHWC
        and tuple(strides) == (1, 1)
        and tuple(pads) == ((1, 1), (1, 1))
        and tuple(rhs_shape[:2]) == (3, 3)
        and min(rhs_shape[2:]) >= min_channels
        and dtype == jnp.float32
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7))
def _conv(lhs: Array, rhs: Array, prepared, strides, pads, dn, precision, wino: int) -> Array:
    def plain(lhs, rhs, prepared):
        return lax.conv_general_dilated(
            lhs, rhs, strides, pads, dimension_numbers=dn, precision=precision
        )

    def cpu(lhs, rhs, prepared):
        if _winograd_applies(lhs.shape, rhs.shape, lhs.dtype, strides, pads, dn, wino):
            u = prepared["winograd"] if prepared else winograd.kernel_transform(rhs)
            return winograd.conv3x3(lhs, u).astype(lhs.dtype)
        return plain(lhs, rhs, prepared)

    return lax.platform_dependent(lhs, rhs, prepared, cpu=cpu, default=plain)


def _conv_fwd(lhs, rhs, prepared, strides, pads, dn, precision, wino):
    return _conv(lhs, rhs, prepared, strides, pads, dn, precision, wino), (lhs, rhs, prepared)


def _canonical_lhs_grad(g, w, lhs_shape, strides, pads, dn, precision):
    """The cotangent of lhs (stride 1) as one convolution with the HWIO kernel `w` =
    `flipped(rhs)`, padded so that the result has lhs's spatial size."""
    n = len(strides)
    new_pads = []
    for i in range(n):
        k = w.shape[i]
        size_in = lhs_shape[dn.lhs_spec[2 + i]]
        size_out = g.shape[dn.out_spec[2 + i]]
        lo, _ = pads[i]
        new_lo = k - 1 - lo
        # chosen so that (size_out - 1) * stride + 1 + new_lo + new_hi - k + 1 == size_in
        new_hi = size_in + k - 2 - (size_out - 1) * strides[i] - new_lo
        new_pads.append((new_lo, new_hi))
    return lax.conv_general_dilated(
        g, w, (1,) * n, new_pads, dimension_numbers=_transposed_dn(dn), precision=precision
    ).astype(g.dtype)


def _phase_kernel(w: Array, q: tuple[int, ...], strides) -> Array | None:
    """The taps q, q + s, q + 2s, ... of the kernel along each spatial dimension, in
    reverse (`w` is the reversed kernel, spatial dimensions first); None where a dimension
    has none."""
    for d, (qd, s) in enumerate(zip(q, strides, strict=True)):
        k = w.shape[d]
        taps = len(range(qd, k, s))
        if taps == 0:
            return None
        w = lax.slice_in_dim(w, k - 1 - qd - (taps - 1) * s, k - qd, s, axis=d)
    return w


def _phase_name(q: tuple[int, ...]) -> str:
    return "phase" + "".join(map(str, q))


def _strided_lhs_grad(g, w, lhs_shape, strides, pads, dn, precision, prepared=None):
    """The cotangent of lhs of a strided convolution without convolving inserted zeros; `w`
    is `flipped(rhs)`.

    Written as one convolution, the input gradient dilates the cotangent by the strides, and
    XLA:CPU then multiplies every kernel tap with the inserted zeros too (s² times the work of
    the forward pass at stride s in 2-D). Split by phase instead: the input positions i with
    (i + pad_lo) mod s = q receive exactly the taps q, q + s, q + 2s, ... of the kernel, so
    each phase is a stride-1 convolution of the cotangent with that sub-kernel, and the
    phases interleave into dx. Together they do the forward pass's multiply-adds.
    """
    n = len(strides)
    t_dn = _transposed_dn(dn)
    size_in = [lhs_shape[dn.lhs_spec[2 + d]] for d in range(n)]
    size_out = [g.shape[dn.out_spec[2 + d]] for d in range(n)]
    # dx index i + pad_lo = t·s + q; phase q covers t in [0, full[d]) before the final crop
    full = [-(-(size_in[d] + pads[d][0]) // strides[d]) for d in range(n)]
    batch = g.shape[dn.out_spec[0]]
    out_shape = [0] * (n + 2)
    out_shape[dn.lhs_spec[0]], out_shape[dn.lhs_spec[1]] = batch, lhs_shape[dn.lhs_spec[1]]

    def phase(q: tuple[int, ...]):
        if prepared and _phase_name(q) in prepared and tuple(strides) == PREPARED_STRIDES:
            sub = prepared[_phase_name(q)]
        else:
            sub = _phase_kernel(w, q, strides)
        lhs, conv_pads, edge = g, [], []
        for d in range(n):
            s, lo = strides[d], pads[d][0]
            taps = sub.shape[d] if sub is not None else 0
            # t for which i = t·s + q - lo lies in [0, size_in)
            t_lo = max(0, -((q[d] - lo) // s))
            t_hi = min(full[d] - 1, (size_in[d] - 1 + lo - q[d]) // s)
            if sub is None or t_hi < t_lo:
                shape = list(out_shape)
                for e in range(n):
                    shape[dn.lhs_spec[2 + e]] = full[e]
                return jnp.zeros(shape, g.dtype)
            # output u = t - t_lo reads cotangent rows u + t_lo - (taps - 1) + j, j < taps
            before, after = taps - 1 - t_lo, (t_hi - t_lo + 1) - size_out[d] - (taps - 1 - t_lo)
            after += taps - 1
            axis = dn.out_spec[2 + d]
            if before < 0:  # crop instead of a negative padding
                lhs = lax.slice_in_dim(lhs, -before, lhs.shape[axis], axis=axis)
                before = 0
            if after < 0:
                lhs = lax.slice_in_dim(lhs, 0, lhs.shape[axis] + after, axis=axis)
                after = 0
            conv_pads.append((before, after))
            edge.append((t_lo, full[d] - 1 - t_hi))
        y = lax.conv_general_dilated(
            lhs, sub, (1,) * n, conv_pads, dimension_numbers=t_dn, precision=precision
        )
        widths = [(0, 0, 0)] * (n + 2)
        for d in range(n):
            widths[dn.lhs_spec[2 + d]] = (*edge[d], 0)
        return lax.pad(y, jnp.zeros((), y.dtype), widths)

    def interleave(d: int, prefix: tuple[int, ...]):
        if d == n:
            return phase(prefix)
        parts = [interleave(d + 1, (*prefix, q)) for q in range(strides[d])]
        axis = dn.lhs_spec[2 + d]
        y = jnp.stack(parts, axis=axis + 1)  # (..., t, q, ...) -> t·s + q
        shape = list(y.shape)
        y = y.reshape((*shape[:axis], shape[axis] * shape[axis + 1], *shape[axis + 2 :]))
        return lax.slice_in_dim(y, pads[d][0], pads[d][0] + size_in[d], axis=axis)

    return interleave(0, ()).astype(g.dtype)


def _conv_bwd(strides, pads, dn, precision, wino, res, g):
    lhs, rhs, prepared = res

    def conv(x, w):
        return lax.conv_general_dilated(
            x, w, strides, pads, dimension_numbers=dn, precision=precision
        )

    def cpu(g, rhs, prepared):
        w = prepared["flipped"] if prepared else flipped(rhs, dn)
        if max(strides) > 1:
            return _strided_lhs_grad(g, w, lhs.shape, strides, pads, dn, precision, prepared)
        t_dn = _transposed_dn(dn)
        if _winograd_applies(g.shape, w.shape, g.dtype, strides, pads, t_dn, wino):
            u = prepared["winograd_grad"] if prepared else winograd.kernel_transform(w)
            return winograd.conv3x3(g, u)
        return _canonical_lhs_grad(g, w, lhs.shape, strides, pads, dn, precision)

    # The kernel's gradient by JAX's rule (a top-level op wherever parameters are trained);
    # XLA drops it when only the input gradient is used, as in the flow.
    dw = jax.vjp(lambda w: conv(lhs, w), rhs)[1](g)[0]
    dx = lax.platform_dependent(
        g,
        rhs,
        prepared,
        cpu=cpu,
        default=lambda g, w, _: jax.vjp(lambda x: conv(x, w), lhs)[1](g)[0],
    )
    return dx.astype(lhs.dtype), dw, jax.tree.map(jnp.zeros_like, prepared)


_conv.defvjp(_conv_fwd, _conv_bwd)


def prepare_kernel(w: Array) -> dict[str, Array]:
    """The forms of an HWIO kernel the CPU convolutions read, computed once for a flow (its
    weights are fixed, and XLA does not hoist them out of the flow's loop itself): the
    input gradient's flipped kernel, its sub-kernels per phase at stride 2 (the estimators'
    downsampling), and for 3×3 kernels both Winograd transforms. Forms a convolution does
    not use are dropped by XLA."""
    dn = lax.conv_dimension_numbers((1, 1, 1, w.shape[2]), w.shape, ("NHWC", "HWIO", "NHWC"))
    w = lax.stop_gradient(w)
    out = {"flipped": flipped(w, dn)}
    for q in itertools.product(*(range(s) for s in PREPARED_STRIDES)):
        sub = _phase_kernel(out["flipped"], q, PREPARED_STRIDES)
        if sub is not None:
            out[_phase_name(q)] = sub
    if tuple(w.shape[:2]) == (3, 3):
        out["winograd"] = winograd.kernel_transform(w)
        out["winograd_grad"] = winograd.kernel_transform(out["flipped"])
    return out


def conv(x: Array, w: Array, strides: Sequence[int], pads, prepared=None) -> Array:
    """NHWC / HWIO convolution with explicit (lo, hi) pads, on CPU by the forms above;
    `prepared` = `prepare_kernel(w)` where a flow has computed it."""
    dn = lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    strides = tuple(int(s) for s in strides)
    return _conv(x, w, prepared, strides, pads, dn, None, WINOGRAD_MIN_CHANNELS)


def conv_general_dilated(
    lhs: Array,
    rhs: Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers=None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision=None,
    preferred_element_type=None,
) -> Array:
    """Drop-in `lax.conv_general_dilated` (same signature and result); plain strided,
    padded, ungrouped convolutions get the CPU-canonical input gradient, anything else (input
    or kernel dilation, groups, a preferred element type) is passed to lax unchanged."""
    plain = (
        feature_group_count == 1
        and batch_group_count == 1
        and preferred_element_type is None
        and all(d == 1 for d in (lhs_dilation or ()))
        and all(d == 1 for d in (rhs_dilation or ()))
    )
    if not plain:
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            batch_group_count,
            precision,
            preferred_element_type,
        )
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    strides = tuple(int(s) for s in window_strides)
    pads = _pads(padding, lhs.shape, rhs.shape, strides, dn)
    return _conv(lhs, rhs, None, strides, pads, dn, precision, WINOGRAD_MIN_CHANNELS)
