import jax
import numpy as np
import pytest

from fdrl_jax import sampling, train
from fdrl_jax.experiment import build_experiment


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
