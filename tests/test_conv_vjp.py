"""Convolutions whose input gradient XLA:CPU runs fast inside loops (`models/conv_vjp.py`): the
same values and gradients as `lax`, HWIO kernels inside a loop, the config field."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from fdrl_jax.models import ResNetEstimator
from fdrl_jax.models.conv_vjp import conv_general_dilated
from fdrl_jax.models.layers import conv

CASES = [  # (dimension numbers, stride, kernel, padding, spatial size)
    (("NHWC", "HWIO", "NHWC"), 1, 3, ((1, 1), (1, 1)), 6),
    (("NHWC", "HWIO", "NHWC"), 2, 3, ((1, 1), (1, 1)), 7),
    (("NHWC", "HWIO", "NHWC"), 2, 1, ((0, 0), (0, 0)), 6),
    (("NHWC", "HWIO", "NHWC"), 2, 4, "SAME", 7),
    (("NHWC", "HWIO", "NHWC"), 3, 2, "VALID", 8),
    (("NHWC", "HWIO", "NHWC"), 1, 3, ((0, 2), (2, 1)), 5),
    (("NCHW", "OIHW", "NCHW"), 2, 3, ((1, 1), (1, 1)), 6),
    (("NWC", "WIO", "NWC"), 2, 3, "SAME", 9),
]


def _operands(dn, kernel, size, seed=0):
    rng = np.random.default_rng(seed)
    nd = len(dn[0]) - 2
    if dn[0].endswith("C"):
        xs, ws = (2, *([size] * nd), 3), (*([kernel] * nd), 3, 4)
    else:
        xs, ws = (2, 3, *([size] * nd)), (4, 3, *([kernel] * nd))
    return (
        jnp.asarray(rng.normal(size=xs), jnp.float32),
        jnp.asarray(rng.normal(size=ws), jnp.float32),
    )


@pytest.mark.parametrize(("dn", "stride", "kernel", "padding", "size"), CASES)
def test_same_value_and_gradients_as_lax(dn, stride, kernel, padding, size):
    x, w = _operands(dn, kernel, size)
    nd = len(dn[0]) - 2

    def loss(fn):
        # sin makes the cotangent depend on the output, so a wrong gradient cannot hide
        return lambda x, w: jnp.sum(
            jnp.sin(fn(x, w, (stride,) * nd, padding, dimension_numbers=dn))
        )

    want = jax.jit(jax.value_and_grad(loss(lax.conv_general_dilated), (0, 1)))(x, w)
    got = jax.jit(jax.value_and_grad(loss(conv_general_dilated), (0, 1)))(x, w)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_grouped_and_dilated_convs_pass_through_to_lax():
    x, w = _operands(("NHWC", "HWIO", "NHWC"), 3, 6)
    w = jnp.concatenate([w, w], -1)[:, :, :1, :6]  # 3 groups of 1 input, 2 output channels
    dn = ("NHWC", "HWIO", "NHWC")
    for dilation in ((1, 1), (2, 2)):

        def loss(fn, x, dilation=dilation):
            y = fn(x, w, (1, 1), "SAME", None, dilation, dn, feature_group_count=3)
            return jnp.sum(jnp.sin(y))

        a = jax.grad(lambda x: loss(lax.conv_general_dilated, x))(x)
        b = jax.grad(lambda x: loss(conv_general_dilated, x))(x)
        np.testing.assert_allclose(b, a, rtol=1e-6)


def test_second_order_reverse_mode_matches_lax():
    # e.g. a gradient penalty: the gradient of a function of the input gradient
    x, w = _operands(("NHWC", "HWIO", "NHWC"), 3, 5)

    def penalty(fn):
        def f(w):
            g = jax.grad(
                lambda x: jnp.sum(
                    jnp.tanh(fn(x, w, (2, 2), "SAME", None, None, ("NHWC", "HWIO", "NHWC")))
                )
            )(x)
            return jnp.sum(g**2)

        return jax.grad(f)(w)

    np.testing.assert_allclose(
        penalty(conv_general_dilated), penalty(lax.conv_general_dilated), rtol=1e-4, atol=1e-6
    )


def _kernel_layouts(compiled_hlo: str) -> set[str]:
    """The kernel part of every convolution's dim_labels, e.g. {"01io", "01oi"}."""
    return {m.split("_")[1].split("->")[0] for m in re.findall(r"dim_labels=(\S+?),", compiled_hlo)}


def test_input_gradient_inside_a_loop_uses_hwio_kernels():
    # XLA:CPU turns non-HWIO kernels into HWIO only outside loops; the flow's input gradient
    # lives in a loop, so conv_vjp must emit HWIO kernels itself (the fast Eigen path).
    x, w = _operands(("NHWC", "HWIO", "NHWC"), 3, 8)

    def flow(x, w):
        def step(y, _):
            g = jax.grad(
                lambda y: jnp.sum(
                    conv_general_dilated(
                        y, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
                    )
                    ** 2
                )
            )(y)
            return y - 0.1 * g, None

        return lax.scan(step, x, None, length=3)[0]

    hlo = jax.jit(flow).lower(x, w).compile().as_text()
    assert _kernel_layouts(hlo) == {"01io"}, _kernel_layouts(hlo)


def test_estimator_is_the_same_function_with_either_conv_grad():
    kw = dict(arch="", stem=8, stages=((8, 1, 1), (16, 1, 2)), attention_after=0)
    fast, plain = ResNetEstimator(**kw, conv_grad="auto"), ResNetEstimator(**kw, conv_grad="xla")
    x = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 3), minval=-1, maxval=1)
    v = fast.init(jax.random.PRNGKey(1), x)
    # γ = 0 at init would hide the attention branch from every gradient
    v = jax.tree_util.tree_map_with_path(
        lambda p, a: a + 0.5 if "gamma" in jax.tree_util.keystr(p) else a, v
    )
    np.testing.assert_allclose(fast.apply(v, x), plain.apply(v, x), rtol=1e-6)
    for argnum in (0, 1):  # input gradient (the flow) and parameter gradient (the loss)

        def grad(net, argnum=argnum):
            return jax.grad(lambda v, x: jnp.sum(jnp.tanh(net.apply(v, x))), argnum)(v, x)

        for a, b in zip(jax.tree.leaves(grad(plain)), jax.tree.leaves(grad(fast)), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_unknown_conv_grad_is_rejected():
    with pytest.raises(ValueError, match="conv_grad"):
        conv(4, 3, 3, conv_grad="fast")


def test_config_field_selects_the_rule():
    from fdrl_jax import configlib
    from fdrl_jax.errors import ConfigError
    from fdrl_jax.models import build_model

    cfg = configlib.default_config()
    assert cfg.model.conv_grad == "auto"
    cfg.model.name = "resnet"
    for rule in ("xla", "auto"):
        cfg.model.conv_grad = rule
        configlib.validate(cfg)
        assert build_model(cfg.model).conv_grad == rule
    cfg.model.conv_grad = "fast"
    with pytest.raises(ConfigError, match="conv_grad"):
        configlib.validate(cfg)
