"""A flow on a spectrally normalised net applies the spectral norms once, not at every step."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import divergences, flows
from fdrl_jax.models import MLP, ResNetEstimator, apply_spectral_norms, converge_spectral_norms

ETA, NU, K = 2.0, 0.05, 4


def _loop_census(fn, *args) -> collections.Counter:
    """Primitives inside the loops (scan / while bodies, nested calls included) of fn's jaxpr."""
    found = collections.Counter()

    def subjaxprs(eqn):
        for value in eqn.params.values():
            for item in value if isinstance(value, tuple | list) else (value,):
                if hasattr(item, "eqns"):
                    yield item
                elif hasattr(getattr(item, "jaxpr", None), "eqns"):  # a closed jaxpr
                    yield item.jaxpr

    def walk(jaxpr, in_loop: bool):
        for eqn in jaxpr.eqns:
            if in_loop:
                found[eqn.primitive.name] += 1
            loop = eqn.primitive.name in ("scan", "while")
            for sub in subjaxprs(eqn):
                walk(sub, in_loop or loop)

    walk(jax.make_jaxpr(fn)(*args).jaxpr, False)
    return found


def _net(spectral_norm: bool):
    # a downsampling block (3×3 and 1×1 strided convs), attention (1×1 convs with biases), head
    return ResNetEstimator(
        arch="", stem=4, stages=((4, 1, 1), (8, 1, 2)), attention_after=1,
        spectral_norm=spectral_norm,
    )  # fmt: skip


def _setup(spectral_norm: bool):
    net = _net(spectral_norm)
    x0 = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 3), minval=-1, maxval=1)
    v = converge_spectral_norms(dict(net.init(jax.random.PRNGKey(1), x0[:1])))
    # move the weights off the converged state, as after a few optimiser steps
    v["params"] = jax.tree.map(lambda p: p * 1.3 + 0.01, v["params"])
    return net, v, x0


def _flow(potential, x0):
    return flows.flow(potential, x0, jax.random.PRNGKey(2), K, ETA, NU)


def test_flow_on_a_spectrally_normalised_net_runs_no_power_iteration_per_step():
    net, v, x0 = _setup(spectral_norm=True)
    fprime = divergences.chi2_fprime
    per_call = _loop_census(lambda x: _flow(lambda y: fprime(net.apply(v, y)), x), x0)
    once = _loop_census(lambda x: _flow(flows.make_potential(net.apply, v, fprime), x), x0)
    off_net, off_v, _ = _setup(spectral_norm=False)
    off = _loop_census(lambda x: _flow(flows.make_potential(off_net.apply, off_v, fprime), x), x0)
    # Each power iteration normalises two vectors (an rsqrt each): 11 normalised layers.
    assert per_call["rsqrt"] == 2 * 11, per_call
    assert once["rsqrt"] == 0, once
    # The loop is the same program as the net's without spectral norm.
    for prim in ("conv_general_dilated", "dot_general", "div", "rsqrt"):
        assert once[prim] == off[prim], (prim, once[prim], off[prim])
    assert per_call["dot_general"] > once["dot_general"]


def test_flow_with_spectral_norms_applied_once_gives_the_same_samples():
    net, v, x0 = _setup(spectral_norm=True)
    fprime = divergences.chi2_fprime
    before = jax.jit(lambda x: _flow(lambda y: fprime(net.apply(v, y)), x))(x0)
    after = jax.jit(lambda x: _flow(flows.make_potential(net.apply, v, fprime), x))(x0)
    moved = float(jnp.linalg.norm(before - x0))
    assert moved > 0.5, moved  # the flow moves the particles
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5 * moved)
    # and the net is the same function, value and input gradient
    applied = apply_spectral_norms(v)
    x = x0 * 0.5
    np.testing.assert_allclose(net.apply(applied, x), net.apply(v, x), rtol=1e-5, atol=1e-6)
    g_applied = jax.grad(lambda y: net.apply(applied, y).sum())(x)
    g = jax.grad(lambda y: net.apply(v, y).sum())(x)
    np.testing.assert_allclose(g_applied, g, rtol=1e-5, atol=1e-6 * float(jnp.abs(g).max()))


@pytest.mark.parametrize("spectral_norm", [True, False])
def test_mlp_with_applied_spectral_norms_is_the_same_function(spectral_norm):
    net = MLP(hidden=16, num_hidden_layers=2, spectral_norm=spectral_norm)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    v = dict(net.init(jax.random.PRNGKey(1), x))
    applied = apply_spectral_norms(v)
    assert (applied is v) == (not spectral_norm)  # nothing to apply: passed through
    np.testing.assert_allclose(net.apply(applied, x), net.apply(v, x), rtol=1e-5, atol=1e-6)


def test_applied_kernels_have_unit_spectral_norm_and_no_state():
    _, v, _ = _setup(spectral_norm=True)
    applied = apply_spectral_norms(converge_spectral_norms(v))
    assert "batch_stats" not in applied
    kernel = np.asarray(applied["params"]["layer2_0"]["conv1"]["kernel"])
    sigma = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    np.testing.assert_allclose(sigma, 1.0, rtol=1e-4)
