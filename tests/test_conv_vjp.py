"""The CPU forms of the convolutions (`models/conv_vjp.py`, `winograd.py`, `layers.Conv`): the
same values and gradients as `lax`, HWIO kernels inside a loop, Winograd's error against
float64, the params of flax's nn.Conv, the kernels' forms computed once per flow, the config
field."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from fdrl_jax import divergences, flows
from fdrl_jax.models import (
    ResNetEstimator,
    conv_vjp,
    converge_spectral_norms,
    prepare_for_flow,
    winograd,
)
from fdrl_jax.models.conv_vjp import conv_general_dilated
from fdrl_jax.models.layers import conv

CASES = [  # (dimension numbers, stride, kernel, padding, spatial size)
    (("NHWC", "HWIO", "NHWC"), 1, 3, ((1, 1), (1, 1)), 6),
    (("NHWC", "HWIO", "NHWC"), 2, 3, ((1, 1), (1, 1)), 7),
    (("NHWC", "HWIO", "NHWC"), 2, 1, ((0, 0), (0, 0)), 6),
    (("NHWC", "HWIO", "NHWC"), 2, 4, "SAME", 7),
    (("NHWC", "HWIO", "NHWC"), 3, 2, "VALID", 8),
    (("NHWC", "HWIO", "NHWC"), 1, 3, ((0, 2), (2, 1)), 5),
    (("NHWC", "HWIO", "NHWC"), 3, 3, ((2, 0), (2, 1)), 8),  # phases that crop the cotangent
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


NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("size", [(8, 8), (7, 5), (1, 2)])
def test_winograd_equals_the_direct_convolution_to_float32_rounding(size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *size, 6)).astype(np.float32)
    w = rng.normal(size=(3, 3, 6, 5)).astype(np.float32)
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, wd = size
    ref = sum(
        xp[:, i : i + h, j : j + wd] @ w[i, j].astype(np.float64)
        for i in range(3)
        for j in range(3)
    )
    direct = np.asarray(
        lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC)
    )
    wino = np.asarray(winograd.conv3x3(jnp.asarray(x), winograd.kernel_transform(jnp.asarray(w))))
    assert wino.shape == ref.shape
    err_direct, err_wino = np.abs(direct - ref).max(), np.abs(wino - ref).max()
    assert err_wino <= 4 * max(err_direct, 1e-7 * np.abs(ref).max()), (err_wino, err_direct)


def test_winograd_convolutions_same_value_and_gradients_as_lax(monkeypatch):
    monkeypatch.setattr(conv_vjp, "WINOGRAD_MIN_CHANNELS", 4)
    x, w = _operands(NHWC, 3, 7)
    x = jnp.concatenate([x, x[..., :2] * 0.5], -1)  # 5 input channels
    w = jnp.concatenate([w, w[:, :, :2] * 0.5], 2)[..., :4]  # 3×3×5×4

    def loss(fn):
        return lambda x, w: jnp.sum(
            jnp.sin(fn(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC))
        )

    want = jax.value_and_grad(loss(lax.conv_general_dilated), (0, 1))(x, w)
    got = jax.value_and_grad(loss(conv_general_dilated), (0, 1))(x, w)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        # float32 rounding of sums of terms as large as the largest entry: an entry that
        # cancels to near zero keeps an error of that scale (the kernel's gradient sums 98
        # products of a cotangent that differs in its last bits)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=4e-6 * float(jnp.abs(a).max()))
    # the value and the input gradient are Winograd's (no convolution left); the kernel's
    # gradient is JAX's rule
    value_and_dx = jax.jit(jax.value_and_grad(loss(conv_general_dilated)))
    assert "convolution(" not in value_and_dx.lower(x, w).compile().as_text()


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("param_init", ["torch", "flax"])
def test_conv_layer_has_the_params_of_flax_conv(use_bias, param_init):
    """Checkpoints and initial weights are those the estimators had with flax's nn.Conv."""
    import flax.linen as nn

    from fdrl_jax.models.layers import _init_kwargs

    ours = conv(6, 3, 4, 2, use_bias=use_bias, param_init=param_init)
    flax_conv = nn.Conv(
        6, (3, 3), (2, 2), padding=((1, 1), (1, 1)), use_bias=use_bias,
        **_init_kwargs(param_init, 4 * 9, use_bias),
    )  # fmt: skip
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 7, 4))
    v_ours, v_flax = ours.init(jax.random.PRNGKey(1), x), flax_conv.init(jax.random.PRNGKey(1), x)
    assert jax.tree.structure(v_ours) == jax.tree.structure(v_flax)
    for a, b in zip(jax.tree.leaves(v_ours), jax.tree.leaves(v_flax), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours.apply(v_ours, x), flax_conv.apply(v_flax, x), rtol=1e-6)


def _flow_setup(spectral_norm: bool):
    """A net with every kind of conv (3×3 and 1×1, strided, attention's with biases), its
    variables moved off their initial values, and a batch."""
    net = ResNetEstimator(
        arch="", stem=4, stages=((4, 1, 1), (8, 1, 2)), attention_after=1,
        spectral_norm=spectral_norm,
    )  # fmt: skip
    x0 = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 3), minval=-1, maxval=1)
    v = converge_spectral_norms(dict(net.init(jax.random.PRNGKey(1), x0[:1])))
    v["params"] = jax.tree.map(lambda p: p * 1.3 + 0.01, v["params"])
    return net, v, x0


def _flow(potential, x0):
    return flows.flow(potential, x0, jax.random.PRNGKey(2), 4, 2.0, 0.05)


def _weight_work_in_loop(fn, *args) -> list[str]:
    """Instructions of the compiled program, inside its loops, that compute a kernel-shaped
    array (k × k × C × C' with k = 1, 3, or 4 for Winograd's form): work on the weights alone.
    Read from the optimised HLO, so dead code and the other platforms' branches are gone."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    comps = {}
    for block in re.split(r"\n\n", text):
        m = re.match(r"(?:ENTRY )?%?([\w.\-]+) ", block.strip())
        if m:
            comps[m.group(1)] = block
    todo, seen = list(re.findall(r"body=%?([\w.\-]+)", text)), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in comps:
            continue
        seen.add(name)
        todo += re.findall(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)", comps[name])
    shape = re.compile(r"\s*(?:ROOT )?%?\S+ = f32\[([134]),\1,\d+,\d+\]\S* ([\w-]+)\(")
    views = ("parameter", "get-tuple-element", "bitcast", "constant")
    return [
        line.strip()[:120]
        for name in seen
        for line in comps[name].splitlines()[1:]
        if (m := shape.match(line)) and m.group(2) not in views
    ]


def test_flow_loop_holds_no_work_on_the_weights_alone(monkeypatch):
    monkeypatch.setattr(conv_vjp, "WINOGRAD_MIN_CHANNELS", 4)  # Winograd on these small convs
    net, v, x0 = _flow_setup(spectral_norm=False)
    fprime = divergences.chi2_fprime
    # the weights are arguments, as in training: nothing about them is known at compile time
    per_call = _weight_work_in_loop(lambda v, x: _flow(lambda y: fprime(net.apply(v, y)), x), v, x0)
    once = _weight_work_in_loop(
        lambda v, x: _flow(flows.make_potential(net.apply, v, fprime), x), v, x0
    )
    assert len(per_call) >= 10, per_call  # flips and Winograd transforms at every step
    assert once == [], once
    # and the prepared forms give the same flow as computing them at every step
    before = jax.jit(lambda x: _flow(lambda y: fprime(net.apply(v, y)), x))(x0)
    after = jax.jit(lambda x: _flow(flows.make_potential(net.apply, v, fprime), x))(x0)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


def test_prepared_variables_are_the_same_function(monkeypatch):
    monkeypatch.setattr(conv_vjp, "WINOGRAD_MIN_CHANNELS", 4)
    net, v, x0 = _flow_setup(spectral_norm=True)
    prepared = prepare_for_flow(v)
    assert set(prepared) == {"params", "spectral_norm_applied", "flow_kernels"}
    np.testing.assert_allclose(net.apply(prepared, x0), net.apply(v, x0), rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda y: net.apply(v, y).sum())(x0)
    g_prepared = jax.grad(lambda y: net.apply(prepared, y).sum())(x0)
    np.testing.assert_allclose(g_prepared, g, rtol=1e-5, atol=1e-6 * float(jnp.abs(g).max()))
