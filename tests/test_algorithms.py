"""Algorithms 1 and 2 (`algorithms.py`) against the same steps worked out by hand on a linear
estimator (`hand_fdrl.py`): every piece of a step (the prior draw and its clamp, the flow's
sign, η, K, the f', which params flow, which samples each loss term sees, the EMA, the
output clamp) changes a number here, so a slip in any of them fails these tests."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hand_fdrl import FixedPrior, flow
from hand_fdrl import train_step as hand_step
from helpers import leaves_equal

from fdrl_jax import algorithms, divergences, flows

PAIRINGS = [("lsif", "chi2"), ("lr", "kl"), ("lr", "js"), ("lr", "logd")]
N, K, ETA, EMA = 32, 6, 0.4, 0.9


def _linear_state(w, b, ema_w, ema_b, tx):
    params = {"kernel": jnp.asarray(w[:, None], jnp.float32), "bias": jnp.asarray([b], jnp.float32)}
    ema = {"kernel": jnp.asarray(ema_w[:, None], jnp.float32), "bias": jnp.asarray([ema_b])}
    return algorithms.TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema_params=ema,
        opt_state=tx.init(params),
        lr_scale=jnp.ones((), jnp.float32),
    )


@pytest.mark.parametrize("clip", [False, True], ids=["unclamped", "clamped"])
@pytest.mark.parametrize("pairing", PAIRINGS, ids=lambda p: "-".join(p))
def test_train_step_is_algorithm_1_differentiated_by_hand(pairing, clip):
    loss, divergence = pairing
    rng = np.random.default_rng(0)
    # The prior draw reaches past [-1, 1] (so the clamp matters); the data sit elsewhere.
    x0 = rng.normal(0.0, 1.5, (N, 2))
    x_p = rng.normal([1.5, -0.5], 0.4, (N, 2))
    w, b = np.array([0.6, -0.8]), 0.3
    ema_w, ema_b = np.array([-0.2, 0.5]), -0.1  # differs from the params: the flow must not use it

    model = nn.Dense(1)
    tx = optax.sgd(1.0)  # params − gradient, exactly
    step = jax.jit(
        functools.partial(
            algorithms.train_step,
            apply_fn=lambda v, x: model.apply(v, x)[:, 0],
            tx=tx,
            fprime=divergences.FPRIMES[divergence],
            loss_fn=divergences.LOSSES[loss],
            num_flow_steps=K,
            eta=ETA,
            nu=0.0,
            ema_decay=EMA,
            clip_prior=clip,
        )
    )
    state = _linear_state(w, b, ema_w, ema_b, tx)
    prior = FixedPrior(jnp.asarray(x0, jnp.float32))
    new, metrics = step(state, prior, jnp.asarray(x_p, jnp.float32), jax.random.PRNGKey(0))

    want = hand_step(
        loss, divergence, w, b, ema_w, ema_b, x0, x_p, steps=K, eta=ETA, ema_decay=EMA, clip=clip
    )
    close = functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5)
    assert bool(metrics["ok"]) and int(new.step) == 1
    close(metrics["loss"], want["loss"])
    close(metrics["flow_dist"], want["flow_dist"])
    close(metrics["grad_norm"], want["grad_norm"])
    close(new.params["kernel"][:, 0], want["w"])
    close(new.params["bias"][0], want["b"])
    close(new.ema_params["kernel"][:, 0], want["ema_w"])
    close(new.ema_params["bias"][0], want["ema_b"])


def test_a_step_over_the_output_bound_is_not_applied():
    """An exploding estimator (mean |output| above `max_abs_output`) leaves the state as it
    was and says so, so a diverged state can never be checkpointed."""
    model, tx = nn.Dense(1), optax.sgd(1.0)
    state = _linear_state(np.array([0.6, -0.8]), 0.3, np.zeros(2), 0.0, tx)
    x = jnp.ones((8, 2))
    new, metrics = algorithms.train_step(
        state,
        FixedPrior(x),
        x,
        jax.random.PRNGKey(0),
        apply_fn=lambda v, y: model.apply(v, y)[:, 0],
        tx=tx,
        fprime=divergences.chi2_fprime,
        loss_fn=divergences.lsif_loss,
        num_flow_steps=2,
        eta=0.1,
        nu=0.0,
        ema_decay=0.9,
        max_abs_output=1e-3,
    )
    assert not bool(metrics["ok"])
    assert leaves_equal(new, state)


def test_sample_is_algorithm_2_by_hand():
    rng = np.random.default_rng(1)
    x0 = rng.normal(0.0, 1.5, (40, 2))
    w, b, steps, eta = np.array([-0.7, 0.4]), 0.2, 9, 0.4
    model = nn.Dense(1)
    params = {"params": {"kernel": jnp.asarray(w[:, None]), "bias": jnp.asarray([b])}}
    potential = flows.make_potential(
        lambda v, x: model.apply(v, x)[:, 0], params, divergences.logd_fprime
    )
    run = functools.partial(
        algorithms.sample,
        potential,
        FixedPrior(jnp.asarray(x0, jnp.float32)),
        jax.random.PRNGKey(0),
        40,
        num_steps=steps,
        eta=eta,
        nu=0.0,
    )
    for clip_prior, clip_output in [(False, False), (True, False), (True, True)]:
        x = flow("logd", w, b, np.clip(x0, -1, 1) if clip_prior else x0, steps, eta)
        if clip_output:
            x = np.clip(x, -1, 1)
        got = run(clip_prior=clip_prior, clip_output=clip_output)
        np.testing.assert_allclose(got, x, rtol=1e-5, atol=1e-5)
    # From given starting points (translation): the same flow, without the prior draw.
    got = algorithms.sample_from(
        potential, jnp.asarray(x0), jax.random.PRNGKey(3), num_steps=steps, eta=eta, nu=0.0
    )
    np.testing.assert_allclose(got, flow("logd", w, b, x0, steps, eta), rtol=1e-5, atol=1e-5)


def test_sample_noise_is_nu_times_a_standard_normal_at_any_eta():
    # η ≠ 1 and ν ≠ 0 with separate roles: a slip such as η·ν·ξ or √ν·ξ changes every step.
    rng = np.random.default_rng(2)
    x0 = rng.normal(0.0, 1.5, (40, 2)).astype(np.float32)
    w, b, steps, eta, nu = np.array([-0.7, 0.4]), 0.2, 5, 0.3, 0.05
    model = nn.Dense(1)
    params = {"params": {"kernel": jnp.asarray(w[:, None]), "bias": jnp.asarray([b])}}
    potential = flows.make_potential(
        lambda v, x: model.apply(v, x)[:, 0], params, divergences.kl_fprime
    )
    key = jax.random.PRNGKey(7)
    # Step k draws its noise from fold_in(key, k) (flows.py).
    noise = [
        np.asarray(jax.random.normal(jax.random.fold_in(key, k), x0.shape)) for k in range(steps)
    ]
    got = algorithms.sample_from(potential, jnp.asarray(x0), key, num_steps=steps, eta=eta, nu=nu)
    want = flow("kl", w, b, x0.astype(np.float64), steps, eta, nu, noise)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(want - flow("kl", w, b, x0.astype(np.float64), steps, eta)).max() > 0.05
