"""The sampler an experiment compiles (`sampler.py`), the one implementation of Algorithm 2
that every mode calls: the config's K + κ, η, ν, f', prior and clamps; one compiled program
for every flow length; sharded over 8 devices it returns the 1-device samples, from the prior,
from given points and with per-sample labels (class-conditional sampling)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import algorithms, divergences, flows, parallel, trainer
from fdrl_jax.classifier import build_classifier
from fdrl_jax.experiment import build_experiment
from fdrl_jax.sampler import Sampler, chunks, conditional_sampler, fdrl_potential


@pytest.fixture
def exp_and_variables(smoke_config):
    exp = build_experiment(smoke_config)
    return exp, trainer.initial_state(exp).variables


def test_the_sampler_flows_k_plus_kappa_steps_with_the_configs_settings(smoke_config):
    c = smoke_config
    c.loss, c.divergence = "lr", "logd"
    c.flow.num_steps, c.flow.kappa, c.flow.eta, c.flow.nu = 6, 3, 0.3, 0.05
    c.flow.normalise_eta = True  # logD: the flow's η is 0.3 / f''(1) = 0.6
    c.prior.clip = c.sample.clip_output = True
    c.prior.std = 2.0  # the clamps cut into the prior's draws and into the samples
    exp = build_experiment(c)
    variables = trainer.initial_state(exp).variables
    key = jax.random.PRNGKey(5)

    potential = flows.make_potential(exp.apply_fn, variables, divergences.logd_fprime)

    def direct(num_steps, eta=0.6):
        return algorithms.sample(
            potential,
            exp.prior,
            key,
            64,
            num_steps=num_steps,
            eta=eta,
            nu=0.05,
            clip_prior=True,
            clip_output=True,
        )

    got = np.asarray(Sampler(exp)(variables, key, 64))
    np.testing.assert_allclose(got, direct(9), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, direct(6), atol=1e-4)  # K alone is not enough
    assert not np.allclose(got, direct(9, eta=0.3), atol=1e-4)  # nor η as given
    assert got.min() >= -1 and got.max() <= 1
    # From given points (translation) the same η: 0.6
    x0 = 0.5 * jax.random.normal(jax.random.PRNGKey(6), (16, 2))
    kw = {"num_steps": 9, "nu": 0.05, "clip_output": True}
    np.testing.assert_allclose(
        Sampler(exp).flow(variables, x0, key),
        algorithms.sample_from(potential, x0, key, eta=0.6, **kw),
        rtol=1e-5,
        atol=1e-6,
    )


def test_one_compiled_sampler_serves_every_length(exp_and_variables):
    exp, variables = exp_and_variables
    potential = chex.assert_max_traces(fdrl_potential(exp), n=2)  # a second trace: records
    sampler = Sampler(exp, num_steps=5, potential=potential)
    key = jax.random.PRNGKey(0)
    c = exp.config
    for steps in (5, 9, 13):
        got = sampler(variables, key, 16, num_steps=None if steps == 5 else steps)
        want = algorithms.sample(
            flows.make_potential(exp.apply_fn, variables, exp.fprime),
            exp.prior,
            key,
            16,
            num_steps=steps,
            eta=c.flow.eta,
            nu=c.flow.nu,
            clip_prior=c.prior.clip,
            clip_output=c.sample.clip_output,
        )
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # recorded lengths are run-time values too: one more program for trajectories of 3 frames
    for marks in ((0, 5, 9), (13, 2, 7)):
        x, traj = sampler(variables, key, 16, num_steps=13, record_at=marks)
        np.testing.assert_allclose(x, sampler(variables, key, 16, num_steps=13), rtol=1e-6)
        for frame, m in zip(traj, marks, strict=True):
            np.testing.assert_allclose(frame, sampler(variables, key, 16, num_steps=m), rtol=1e-6)


def test_record_at_past_the_flow_length_is_rejected(exp_and_variables):
    exp, variables = exp_and_variables
    with pytest.raises(ValueError, match="record_at"):
        Sampler(exp, num_steps=3)(variables, jax.random.PRNGKey(0), 4, record_at=(0, 4))


def test_eight_devices_give_the_one_device_samples(exp_and_variables):
    """n = 10 is padded to 16 for 8 devices: the first 10 are the 1-device samples, from the
    prior and from given points, and the flow really ran on every device."""
    exp, variables = exp_and_variables
    one, eight = Sampler(exp), Sampler(exp, mesh=parallel.make_mesh(jax.devices()))
    key = jax.random.PRNGKey(2)
    got = eight(variables, key, 10)
    assert got.shape == (10, 2)
    np.testing.assert_allclose(got, one(variables, key, 10), rtol=1e-5, atol=1e-6)
    _, traj = eight(variables, key, 10, record_at=(0, 4))
    assert traj.shape == (2, 10, 2)
    x0 = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (10, 2)))
    moved = eight.flow(variables, x0, key)
    assert len(moved.sharding.device_set) == 8
    np.testing.assert_allclose(moved, one.flow(variables, x0, key), rtol=1e-5, atol=1e-6)


def test_conditional_sampling_sharded_over_devices_equals_one_device(smoke_config):
    """The composed potential with per-sample labels (10 of them, padded to 16 for 8
    devices) gives the 1-device samples; the flow length is a run-time value."""
    exp = build_experiment(smoke_config)  # 2D swiss roll; a small 4-class classifier
    variables = trainer.initial_state(exp).variables
    smoke_config.classifier.name = "mlp"
    net = build_classifier(smoke_config.classifier, 4)
    guide = net.init(jax.random.PRNGKey(1), jnp.zeros((1, 2)))["params"]

    @chex.assert_max_traces(n=2)  # one program each: other lengths and labels reuse it
    def apply(p, x):
        return net.apply({"params": p}, x)

    one = conditional_sampler(exp, apply, 0.5, num_steps=3)
    eight = conditional_sampler(
        exp, apply, 0.5, num_steps=3, mesh=parallel.make_mesh(jax.devices())
    )
    key, labels = jax.random.PRNGKey(2), np.arange(10) % 4
    a = one((variables, guide), key, 10, labels=labels)
    np.testing.assert_allclose(
        eight((variables, guide), key, 10, labels=labels), a, rtol=1e-4, atol=1e-5
    )
    longer = one((variables, guide), key, 10, labels=labels, num_steps=7)
    assert not np.allclose(longer, a, atol=1e-4)
    # the labels matter: a different class steers the same draws elsewhere
    other = one((variables, guide), key, 10, labels=(labels + 1) % 4)
    assert not np.allclose(other, a, atol=1e-6)


def test_chunks_and_sample_many(exp_and_variables):
    """Large n drawn a batch at a time: a single batch is one call with the key itself."""
    exp, variables = exp_and_variables
    key = jax.random.PRNGKey(4)
    assert [m for _, m in chunks(key, 10, 4)] == [4, 4, 2]
    sampler = Sampler(exp)
    np.testing.assert_array_equal(
        sampler.sample_many(variables, key, 10, 16), np.asarray(sampler(variables, key, 10))
    )
    many = sampler.sample_many(variables, key, 10, 4)
    first = np.asarray(sampler(variables, jax.random.fold_in(key, 0), 4))
    np.testing.assert_array_equal(many[:4], first)
    assert many.shape == (10, 2) and not np.allclose(many[4:8], first)
