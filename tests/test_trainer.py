"""The training step an experiment compiles (`trainer.py`): Algorithm 1 with the config's
settings, the same step on 1 and 8 devices and from streamed batches, float32 state in
bfloat16, one power iteration of spectral norm per step, and training that carries the
particles across the density chasm."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from helpers import assert_close, configs, leaves_equal

from fdrl_jax import algorithms, configlib, divergences, parallel, sampler, trainer
from fdrl_jax.data import streaming
from fdrl_jax.experiment import STREAM_DATA, STREAM_TRAIN, build_experiment, stream_key


def train_steps(exp, steps, mesh=None):
    """(state, metrics) after `steps` compiled steps from the initial state."""
    step_fn = trainer.make_train_step(exp, mesh)
    state, metrics = trainer.initial_state(exp, mesh), None
    batches = trainer.batches(exp, mesh)
    try:
        for s in range(steps):
            state, metrics = step_fn(state, batches.get(s))
    finally:
        batches.close()
    return state, metrics


def test_the_step_runs_train_step_with_the_configs_settings(smoke_config):
    """`make_train_step` is `train_step` with the config's K, η, ν, EMA decay, f', loss, prior
    and optimiser, keyed by the step; every setting differs from its default here, so a
    setting passed to the wrong argument (or not at all) changes the result."""
    c = smoke_config
    c.loss, c.divergence = "lr", "js"
    c.flow.num_steps, c.flow.eta, c.flow.nu = 7, 0.3, 0.05
    c.flow.normalise_eta = True  # JS: the flow's η is 0.3 / f''(1) = 0.6
    c.train.ema_decay, c.optim.lr, c.optim.b1 = 0.7, 3e-3, 0.8
    c.prior.std = 0.5
    exp = build_experiment(c)
    state = trainer.initial_state(exp)
    state = state.replace(ema_params=jax.tree.map(lambda p: 0.5 * p, state.params))
    keep = jax.tree.map(jnp.copy, state)  # the step function donates its input

    want_tx, _ = algorithms.make_optimizer(
        c.optim.lr, c.optim.decay_steps, b1=c.optim.b1, b2=c.optim.b2
    )
    want, want_metrics = jax.jit(
        functools.partial(
            algorithms.train_step,
            apply_fn=exp.apply_fn,
            tx=want_tx,
            fprime=divergences.js_fprime,
            loss_fn=divergences.lr_loss,
            num_flow_steps=7,
            eta=0.6,
            nu=0.05,
            ema_decay=0.7,
        )
    )(
        keep,
        exp.prior,
        exp.data.sample(stream_key(c, STREAM_DATA, 0), c.train.batch_size),
        stream_key(c, STREAM_TRAIN, 0),
    )
    got, metrics = trainer.make_train_step(exp)(state, exp.data)
    for name in ("loss", "flow_dist", "grad_norm", "out_q", "out_p"):
        np.testing.assert_allclose(metrics[name], want_metrics[name], rtol=1e-4, err_msg=name)
    assert_close(got, want, rtol=1e-4, atol=1e-5)  # XLA fuses the two differently
    # And the prior it draws from is the config's: N(0, 0.5² I).
    draws = np.asarray(exp.prior.sample(jax.random.PRNGKey(0), 20_000))
    np.testing.assert_allclose(draws.std(0), [0.5, 0.5], rtol=0.03)


def test_steps_are_a_function_of_the_seed_and_the_step(smoke_config):
    exp = build_experiment(smoke_config)
    a, _ = train_steps(exp, 3)
    b, _ = train_steps(exp, 3)
    assert int(a.step) == 3 and leaves_equal(a, b)
    smoke_config.seed = 1
    c, _ = train_steps(build_experiment(smoke_config), 3)
    assert not leaves_equal(c.params, a.params)


def test_the_stale_estimator_does_not_flow(smoke_config):
    smoke_config.stale_estimator = True
    _, metrics = train_steps(build_experiment(smoke_config), 1)
    assert float(metrics["flow_dist"]) == 0.0 and bool(metrics["ok"])


def test_eight_devices_compute_the_one_device_step(smoke_config):
    """The batch sharded over 8 devices, params replicated: the same steps as on one device
    (to float rounding of the batch reductions), and a state that lives on all 8."""
    mesh = parallel.make_mesh(jax.devices())
    assert mesh.size == 8
    exp = build_experiment(smoke_config)
    one, _ = train_steps(exp, 4)
    eight, _ = train_steps(exp, 4, mesh)
    assert eight.params["Dense_0"]["kernel"].sharding.device_set == set(jax.devices())
    assert_close(eight.params, one.params)
    assert_close(eight.ema_params, one.ema_params)


def _digits(pipeline):
    c = configlib.load_config(configs("digits.py:smoke"))
    c.data.flip = True  # exercise the flips too
    c.data.pipeline = pipeline
    return c


def test_streamed_batches_train_the_device_paths_model():
    """The host-resident set, streamed batch by batch (sharded over 8 devices), trains the
    model the device-resident set trains."""
    resident = build_experiment(_digits("device"))
    streamed = build_experiment(_digits("stream"))
    assert streaming.is_streamed(streamed.data) and not streaming.is_streamed(resident.data)
    a, _ = train_steps(resident, 4)
    b, _ = train_steps(streamed, 4, parallel.make_mesh(jax.devices()))
    assert_close(b.params, a.params)
    assert_close(b.ema_params, a.ema_params)


def _spectral_norm_config():
    c = configlib.default_config()
    c.data.name, c.data.size, c.data.synthetic_count = "synthetic", 8, 32
    c.model.update(name="resnet", arch="", stem=4, stages=((4, 1, 1), (8, 1, 2)))
    c.model.spectral_norm = True
    c.train.batch_size, c.flow.num_steps = 8, 5
    c.prior.clip = True
    return c


def test_bfloat16_training_keeps_float32_state(smoke_config):
    smoke_config.train.precision = "bfloat16"
    state, metrics = train_steps(build_experiment(smoke_config), 1)
    assert bool(metrics["ok"])
    assert {
        a.dtype
        for a in jax.tree.leaves((state.params, state.ema_params, state.opt_state))
        if jnp.issubdtype(a.dtype, jnp.floating)
    } == {jnp.dtype("float32")}


def test_one_power_iteration_per_step_and_none_in_the_flow():
    exp = build_experiment(_spectral_norm_config())
    before = trainer.initial_state(exp)
    assert before.stats, "spectral norm keeps its power-iteration vectors in batch_stats"
    expected = exp.update_stats(before.params, before.stats, jnp.zeros((1, 8, 8, 3)))
    after, metrics = trainer.make_train_step(exp)(jax.tree.map(jnp.copy, before), exp.data)
    assert bool(metrics["ok"])
    # Exactly one power iteration with the step's starting params, however many flow steps.
    assert_close(after.stats, expected, rtol=1e-6, atol=1e-7)
    assert not leaves_equal(after.stats, before.stats)


# ------------------------------------------------------------------ training learns

TARGET = np.array([6.0, 6.0])  # the chasm's data mean
PRIOR_MEAN = 3.0
PRIOR_DISTANCE = float(np.linalg.norm(TARGET - PRIOR_MEAN))  # 4.24: where the samples start


def chasm_config(seed: int = 0, stale: bool = False):
    """The density chasm (paper Fig. 2/3) at a size that trains in seconds: prior N(3·1,
    0.1 I), data N(6·1, 0.1 I), neither with mass where the other has; 200 steps of batch 128,
    K = 50, LR-KL as configs/chasm.py."""
    c = configlib.load_config(configs("chasm.py"))
    c.seed, c.stale_estimator = seed, stale
    c.prior.mean = PRIOR_MEAN  # the chasm narrowed to 4.2 (13 prior std): 10× fewer steps
    c.train.batch_size, c.train.num_steps = 128, 200
    c.flow.num_steps = 50
    c.optim.lr, c.optim.decay_steps = 5e-4, ()
    c.train.ema_decay = 0.9  # the EMA (what samples) must follow 200 steps
    return c


def train_chasm(seed: int = 0, stale: bool = False, n: int = 2000) -> np.ndarray:
    """Samples (Algorithm 2, EMA params) of a model trained on the chasm."""
    exp = build_experiment(chasm_config(seed, stale))
    state, _ = train_steps(exp, exp.config.train.num_steps)
    return np.asarray(sampler.Sampler(exp)(state.ema_variables, jax.random.PRNGKey(7), n))


def summary(x: np.ndarray) -> tuple[float, float]:
    """(distance of the sample mean to the data's, share of samples within 1 of the data's
    mean; the data hold 99.3% there)."""
    return (
        float(np.linalg.norm(x.mean(0) - TARGET)),
        float(np.mean(np.linalg.norm(x - TARGET, axis=1) < 1.0)),
    )


def test_fdrl_carries_the_particles_across_the_density_chasm():
    """A slip in any piece of training (the flow's sign, the loss's terms, the f', what the
    loss sees, ...) fails this. Seeds 0-9 (`benchmarks/learning_margin.py`): distance
    0.007-0.26 (prior: 4.24), share near 0.86-0.99 (prior: 0)."""
    distance, near = summary(train_chasm())
    assert distance < 0.25 * PRIOR_DISTANCE, distance
    assert near > 0.6, near


def test_the_stale_estimator_does_not_land_on_the_data():
    """The paper's point (Sec. 3.1): trained on prior vs data alone, the estimator's flow
    overshoots the target; the same settings as FDRL above. Seeds 0-5: the sample mean moves
    53-71 along the prior-to-data direction (the gap is 4.24) and ends 49-67 from the data, so
    a model whose flow does not move, or stops short, fails too."""
    x = train_chasm(stale=True)
    distance, near = summary(x)
    assert distance > 0.5 * PRIOR_DISTANCE or near < 0.2, (distance, near)
    direction = (TARGET - PRIOR_MEAN) / PRIOR_DISTANCE
    along = float((x.mean(0) - PRIOR_MEAN) @ direction)
    assert along > 2 * PRIOR_DISTANCE, along  # it crossed the chasm and ran past the data
