"""One `train_step` against Algorithm 1 worked out by hand on a linear estimator.

For r(x) = w·x + b the flow and the loss's gradient are a few lines of numpy (`hand_fdrl.py`).
With an `optax.sgd(1.0)` optimiser the step must leave params − gradient, and the EMA
m·ema + (1 − m)·params. Every piece of the step (the prior draw and its clamp, the flow's sign,
η, K, the f', which params flow, which samples each loss term sees, the EMA) changes a number
here, so a slip in any of them fails these tests.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hand_fdrl import FixedPrior
from hand_fdrl import train_step as hand_step

from fdrl_jax import divergences, train
from fdrl_jax.experiment import build_experiment

PAIRINGS = [("lsif", "chi2"), ("lr", "kl"), ("lr", "js"), ("lr", "logd")]
N, K, ETA, EMA = 32, 6, 0.4, 0.9


def _linear_state(w, b, ema_w, ema_b, tx):
    params = {"kernel": jnp.asarray(w[:, None], jnp.float32), "bias": jnp.asarray([b], jnp.float32)}
    ema = {"kernel": jnp.asarray(ema_w[:, None], jnp.float32), "bias": jnp.asarray([ema_b])}
    return train.TrainState(
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
            train.train_step,
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


def test_the_step_function_runs_train_step_with_the_configs_settings(smoke_config):
    """`make_step_fn` (what training runs) is `train_step` with the config's K, η, ν, EMA
    decay, f', loss, prior and optimiser; every setting differs from its default here, so a
    setting passed to the wrong argument (or not at all) changes the result."""
    c = smoke_config
    c.loss, c.divergence = "lr", "js"
    c.flow.num_steps, c.flow.eta, c.flow.nu = 7, 0.3, 0.05
    c.train.ema_decay, c.optim.lr, c.optim.b1 = 0.7, 3e-3, 0.8
    c.prior.std = 0.5
    exp = build_experiment(c)
    step_fn, tx = train.make_step_fn(exp)
    state = train.initial_state(exp, tx)
    state = state.replace(ema_params=jax.tree.map(lambda p: 0.5 * p, state.params))
    keep = jax.tree.map(jnp.copy, state)  # the step function donates its input

    root = jax.random.PRNGKey(c.seed)
    k_data = jax.random.fold_in(jax.random.fold_in(root, train.STREAM_DATA), 0)
    k_train = jax.random.fold_in(jax.random.fold_in(root, train.STREAM_TRAIN), 0)
    want_tx, _ = train.make_optimizer(c.optim.lr, c.optim.decay_steps, b1=c.optim.b1, b2=c.optim.b2)
    want, want_metrics = jax.jit(
        functools.partial(
            train.train_step,
            apply_fn=exp.apply_fn,
            tx=want_tx,
            fprime=divergences.js_fprime,
            loss_fn=divergences.lr_loss,
            num_flow_steps=7,
            eta=0.3,
            nu=0.05,
            ema_decay=0.7,
        )
    )(keep, exp.prior, exp.data.sample(k_data, c.train.batch_size), k_train)
    got, metrics = step_fn(state)
    for name in ("loss", "flow_dist", "grad_norm", "out_q", "out_p"):
        np.testing.assert_allclose(metrics[name], want_metrics[name], rtol=1e-4, err_msg=name)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # XLA fuses the two differently
    # And the prior it draws from is the config's: N(0, 0.5² I).
    draws = np.asarray(exp.prior.sample(jax.random.PRNGKey(0), 20_000))
    np.testing.assert_allclose(draws.std(0), [0.5, 0.5], rtol=0.03)
