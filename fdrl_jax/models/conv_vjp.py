"""`lax.conv_general_dilated` whose input gradient XLA:CPU runs on its fast path inside loops.

Inside the flow's loop XLA:CPU leaves JAX's input-gradient convolutions (a reversed kernel with
swapped feature dimensions) off its fast HWIO path, because its canonicalisation pass visits
only the entry computation (benchmarks/RESULTS.md, "CPU: a CIFAR-10 training iteration"). Here
the input gradient is emitted with the kernel already reversed and transposed to HWIO: the same
values and gradients, on CPU only (`lax.platform_dependent`; other backends keep JAX's rule).
Being a `jax.custom_vjp`, it has no forward-mode derivative (`jax.jvp`, `jax.hessian`);
`conv_grad="xla"` keeps JAX's rules.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
from jax import lax

Array = jax.Array

# Values of the `conv_grad` field of the estimators: "auto" emits canonical input-gradient
# convolutions on CPU (this module), "xla" keeps JAX's default differentiation rule.
CONV_GRADS = ("auto", "xla")


def _pads(padding, lhs_shape, rhs_shape, strides, dn: lax.ConvDimensionNumbers):
    """Explicit (lo, hi) pairs per spatial dimension (resolves "SAME" / "VALID")."""
    if not isinstance(padding, str):
        return tuple((int(lo), int(hi)) for lo, hi in padding)
    in_sizes = [lhs_shape[d] for d in dn.lhs_spec[2:]]
    k_sizes = [rhs_shape[d] for d in dn.rhs_spec[2:]]
    return tuple(lax.padtype_to_pads(in_sizes, k_sizes, strides, padding))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv(lhs: Array, rhs: Array, strides, pads, dn, precision) -> Array:
    return lax.conv_general_dilated(
        lhs, rhs, strides, pads, dimension_numbers=dn, precision=precision
    )


def _conv_fwd(lhs, rhs, strides, pads, dn, precision):
    return _conv(lhs, rhs, strides, pads, dn, precision), (lhs, rhs)


def _canonical_lhs_grad(g, rhs, lhs_shape, strides, pads, dn, precision):
    """The cotangent of lhs as one convolution whose kernel is laid out HWIO.

    The input gradient of y = conv(x, w) is conv(g dilated by the strides, w reversed in
    space with in/out features swapped), padded so that the result has x's spatial size.
    """
    n = len(strides)
    spatial, out_feat, in_feat = dn.rhs_spec[2:], dn.rhs_spec[0], dn.rhs_spec[1]
    # (spatial..., O, I) of the forward kernel = (spatial..., I', O') of the transposed conv
    w_t = lax.transpose(lax.rev(rhs, spatial), (*spatial, out_feat, in_feat))
    new_pads = []
    for i in range(n):
        k = rhs.shape[spatial[i]]
        size_in = lhs_shape[dn.lhs_spec[2 + i]]
        size_out = g.shape[dn.out_spec[2 + i]]
        lo, _ = pads[i]
        new_lo = k - 1 - lo
        # chosen so that (size_out - 1) * stride + 1 + new_lo + new_hi - k + 1 == size_in
        new_hi = size_in + k - 2 - (size_out - 1) * strides[i] - new_lo
        new_pads.append((new_lo, new_hi))
    # The cotangent has the output's layout and dx the input's; the kernel is (spatial, I, O).
    t_dn = lax.ConvDimensionNumbers(
        lhs_spec=dn.out_spec, rhs_spec=(n + 1, n, *range(n)), out_spec=dn.lhs_spec
    )
    return lax.conv_general_dilated(
        g,
        w_t,
        (1,) * n,
        new_pads,
        lhs_dilation=strides,
        dimension_numbers=t_dn,
        precision=precision,
    ).astype(g.dtype)


def _conv_bwd(strides, pads, dn, precision, res, g):
    lhs, rhs = res

    def conv(x, w):
        return lax.conv_general_dilated(
            x, w, strides, pads, dimension_numbers=dn, precision=precision
        )

    # The kernel's gradient by JAX's rule (a top-level op wherever parameters are trained);
    # XLA drops it when only the input gradient is used, as in the flow.
    dw = jax.vjp(lambda w: conv(lhs, w), rhs)[1](g)[0]
    dx = lax.platform_dependent(
        g,
        rhs,
        cpu=lambda g, w: _canonical_lhs_grad(g, w, lhs.shape, strides, pads, dn, precision),
        default=lambda g, w: jax.vjp(lambda x: conv(x, w), lhs)[1](g)[0],
    )
    return dx.astype(lhs.dtype), dw


_conv.defvjp(_conv_fwd, _conv_bwd)


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
    return _conv(lhs, rhs, strides, pads, dn, precision)
