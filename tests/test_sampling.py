"""Algorithm 2 (draw from the prior, clamp, flow K + κ steps, clamp) worked out by hand on a
linear estimator, the sampler an experiment builds from its config, and one compiled sampler
for every flow length."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hand_fdrl import FixedPrior, flow

from fdrl_jax import divergences, run, sampling, train
from fdrl_jax.experiment import build_experiment
from fdrl_jax.run import checkpoints


def test_sample_is_algorithm_2_by_hand():
    rng = np.random.default_rng(1)
    x0 = rng.normal(0.0, 1.5, (40, 2))
    w, b, steps, eta = np.array([-0.7, 0.4]), 0.2, 9, 0.4
    model = nn.Dense(1)
    params = {"params": {"kernel": jnp.asarray(w[:, None]), "bias": jnp.asarray([b])}}
    run = functools.partial(
        sampling.sample,
        lambda v, x: model.apply(v, x)[:, 0],
        params,
        FixedPrior(jnp.asarray(x0, jnp.float32)),
        divergences.logd_fprime,
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


def test_the_sampler_flows_k_plus_kappa_steps_with_the_configs_settings(smoke_config):
    """`make_sample_fn` (what --mode=sample and eval use) is `sample` with the config's K + κ,
    η, ν, f', prior and clamps."""
    c = smoke_config
    c.loss, c.divergence = "lr", "logd"
    c.flow.num_steps, c.flow.kappa, c.flow.eta, c.flow.nu = 6, 3, 0.3, 0.05
    c.prior.clip = c.sample.clip_output = True
    c.prior.std = 2.0  # the clamps cut into the prior's draws and into the samples
    exp = build_experiment(c)
    _, tx = train.make_step_fn(exp)
    variables = train.initial_state(exp, tx).variables
    key = jax.random.PRNGKey(5)

    def direct(num_steps):
        return sampling.sample(
            exp.apply_fn,
            variables,
            exp.prior,
            divergences.logd_fprime,
            key,
            64,
            num_steps=num_steps,
            eta=0.3,
            nu=0.05,
            clip_prior=True,
            clip_output=True,
        )

    got = np.asarray(sampling.make_sample_fn(exp)(variables, key, 64))
    np.testing.assert_allclose(got, direct(9), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, direct(6), atol=1e-4)  # K alone is not enough
    assert got.min() >= -1 and got.max() <= 1


def test_sample_mode_draws_with_the_ema_params(smoke_config, tmp_path):
    """--mode=sample restores the latest checkpoint and samples its EMA params."""
    exp = build_experiment(smoke_config)
    _, tx = train.make_step_fn(exp)
    state = train.initial_state(exp, tx)
    state = state.replace(ema_params=jax.tree.map(lambda p: -p, state.params))  # clearly not
    ckpt = checkpoints.Checkpointer(str(tmp_path / "checkpoints"))
    ckpt.save(1, state)
    ckpt.close()
    with np.load(run.sample(smoke_config, str(tmp_path))) as z:
        got = z["samples"]
    sample_fn = sampling.make_sample_fn(exp)
    key, n = jax.random.PRNGKey(smoke_config.sample.seed), smoke_config.sample.num_samples
    np.testing.assert_allclose(got, sample_fn(state.ema_variables, key, n), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, sample_fn(state.variables, key, n), atol=1e-3)


@pytest.fixture
def exp_and_variables(smoke_config):
    exp = build_experiment(smoke_config)
    _, tx = train.make_step_fn(exp)
    return exp, train.initial_state(exp, tx).variables


def test_one_compiled_sampler_serves_every_length(exp_and_variables, monkeypatch):
    exp, variables = exp_and_variables
    traces = []
    original = sampling.sample

    def counting(*args, **kwargs):
        traces.append(kwargs["num_steps"])
        return original(*args, **kwargs)

    monkeypatch.setattr(sampling, "sample", counting)
    fn = sampling.make_sample_fn(exp, num_steps=5)
    key = jax.random.PRNGKey(0)
    c = exp.config
    for steps in (5, 9, 13):
        got = fn(variables, key, 16, num_steps=None if steps == 5 else steps)
        want = original(
            exp.apply_fn,
            variables,
            exp.prior,
            exp.fprime,
            key,
            16,
            num_steps=steps,
            eta=c.flow.eta,
            nu=c.flow.nu,
            clip_prior=c.prior.clip,
            clip_output=c.sample.clip_output,
        )
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert len(traces) == 1
    # recorded lengths are run-time values too: one more program for trajectories of 3 frames
    for marks in ((0, 5, 9), (13, 2, 7)):
        x, traj = fn(variables, key, 16, num_steps=13, record_at=marks)
        np.testing.assert_allclose(x, fn(variables, key, 16, num_steps=13), rtol=1e-6)
        for frame, m in zip(traj, marks, strict=True):
            np.testing.assert_allclose(frame, fn(variables, key, 16, num_steps=m), rtol=1e-6)
    assert len(traces) == 2


def test_record_at_past_the_flow_length_is_rejected(exp_and_variables):
    exp, variables = exp_and_variables
    fn = sampling.make_sample_fn(exp, num_steps=4, record_at=(0, 4))
    with pytest.raises(ValueError, match="record_at"):
        fn(variables, jax.random.PRNGKey(0), 4, num_steps=3)
