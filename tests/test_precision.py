"""bfloat16 compute: flows and training steps track float32 closely; state stays float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import configlib, flow_lib, train
from fdrl_jax.experiment import build_experiment


def _image_config(precision: str):
    c = configlib.default_config()
    c.data.name, c.data.size, c.data.synthetic_count = "synthetic", 8, 32
    c.model.update(name="resnet", arch="", stem=8, stages=((8, 1, 1), (16, 1, 2)))
    c.train.batch_size, c.flow.num_steps, c.train.precision = 8, 10, precision
    c.prior.clip = True
    return c


@pytest.mark.slow
def test_bf16_and_float32_flows_agree_on_a_small_resnet():
    # Stated tolerances (bf16 keeps 8 mantissa bits): outputs within 2% of their spread, the
    # potential's input gradient within 10% (relative L2; measured 6.5% on this random net),
    # and the particles' displacement after 10 steps within 5% (measured 2.4%).
    e32, e16 = (
        build_experiment(_image_config("float32")),
        build_experiment(_image_config("bfloat16")),
    )
    _, tx = train.make_step_fn(e32)
    variables = train.initial_state(e32, tx).variables
    x0 = jnp.clip(jax.random.normal(jax.random.PRNGKey(0), (16, 8, 8, 3)), -1, 1)
    moved, grads = {}, {}
    for name, e in (("f32", e32), ("bf16", e16)):
        potential = flow_lib.make_potential(e.apply_fn, variables, e.fprime)
        grads[name] = np.asarray(jax.grad(lambda x, p=potential: p(x).sum())(x0))
        xk = flow_lib.flow(potential, x0, jax.random.PRNGKey(1), 10, 1.0, 0.0)
        assert xk.dtype == jnp.float32
        moved[name] = np.asarray(xk - x0)
    rel = np.linalg.norm(grads["bf16"] - grads["f32"]) / np.linalg.norm(grads["f32"])
    assert rel < 0.10, rel
    assert np.linalg.norm(moved["f32"]) > 1.0  # the particles really moved
    rel = np.linalg.norm(moved["bf16"] - moved["f32"]) / np.linalg.norm(moved["f32"])
    assert rel < 0.05, rel
    out32 = np.asarray(e32.apply_fn(variables, x0))
    out16 = np.asarray(e16.apply_fn(variables, x0))
    assert np.abs(out16 - out32).max() < 0.02 * (np.ptp(out32) + 1e-6) + 1e-3


def test_bf16_training_keeps_float32_state():
    e = build_experiment(_image_config("bfloat16"))
    step_fn, tx = train.make_step_fn(e)
    state, metrics = step_fn(train.initial_state(e, tx))
    assert bool(metrics["ok"])
    assert {
        a.dtype
        for a in jax.tree.leaves((state.params, state.ema_params, state.opt_state))
        if jnp.issubdtype(a.dtype, jnp.floating)
    } == {jnp.dtype("float32")}
