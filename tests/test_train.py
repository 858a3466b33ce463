import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import configlib, run, train
from fdrl_jax.experiment import build_experiment
from fdrl_jax.run import checkpoints


def _leaves_equal(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _fresh(config):
    exp = build_experiment(config)
    step_fn, tx = train.make_step_fn(exp)
    return step_fn, train.initial_state(exp, tx)


def test_train_step_is_deterministic_for_a_seed(smoke_config):
    runs = []
    for _ in range(2):
        step_fn, state = _fresh(smoke_config)
        for _ in range(3):
            state, metrics = step_fn(state)
        runs.append((state, metrics))
    assert int(runs[0][0].step) == 3
    assert _leaves_equal(runs[0][0], runs[1][0])
    smoke_config.seed = 1
    step_fn, state = _fresh(smoke_config)
    state, _ = step_fn(state)
    assert not _leaves_equal(state.params, runs[0][0].params)


def test_train_step_updates_params_and_ema(smoke_config):
    step_fn, state0 = _fresh(smoke_config)
    p0 = jax.tree.map(np.asarray, state0.params)
    state, m = step_fn(state0)
    d = smoke_config.train.ema_decay
    for p_old, p_new, e_new in zip(
        jax.tree.leaves(p0),
        jax.tree.leaves(state.params),
        jax.tree.leaves(state.ema_params),
        strict=True,
    ):
        assert not np.allclose(p_old, p_new)
        np.testing.assert_allclose(e_new, d * p_old + (1 - d) * p_new, rtol=1e-5, atol=1e-7)
    assert bool(m["ok"]) and float(m["flow_dist"]) > 0


def test_stale_estimator_does_not_flow(smoke_config):
    smoke_config.stale_estimator = True
    step_fn, state = _fresh(smoke_config)
    _, m = step_fn(state)
    assert float(m["flow_dist"]) == 0.0


def test_resumed_run_equals_uninterrupted_run(smoke_config, tmp_path):
    smoke_config.train.num_steps = 20
    smoke_config.train.checkpoint_every = 7
    full = run.train(smoke_config, str(tmp_path / "full"))
    part = tmp_path / "part"
    smoke_config.train.num_steps = 9  # "interrupted" after step 9; last checkpoint at 9
    run.train(smoke_config, str(part))
    smoke_config.train.num_steps = 20
    resumed = run.train(smoke_config, str(part))
    assert int(resumed.step) == 20
    assert _leaves_equal(full, resumed)
    steps = [int(line.split(",")[0].split(":")[1]) for line in open(part / "metrics.jsonl")]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # one run's log


def test_workdir_contract(smoke_config, tmp_path):
    wd = tmp_path / "run"
    run.train(smoke_config, str(wd))
    assert (wd / "config.json").exists() and (wd / "metrics.jsonl").exists()
    assert sorted(os.listdir(wd / "checkpoints")) == ["10", "20"]
    assert os.listdir(wd / "samples")
    line = open(wd / "metrics.jsonl").readline()
    for key in ("step", "loss", "lr", "out_p", "out_q", "steps_per_sec"):
        assert f'"{key}"' in line


def test_nonfinite_loss_stops_training_and_keeps_the_last_checkpoint(smoke_config, tmp_path):
    wd = str(tmp_path / "run")
    smoke_config.train.num_steps = 10
    good = run.train(smoke_config, wd)
    smoke_config.train.num_steps = 20
    smoke_config.flow.eta = 1e38  # the flow overflows: x_K = inf, loss = nan
    with pytest.raises(run.DivergenceError, match="diverged at step 11.*checkpoint"):
        run.train(smoke_config, wd)
    ckpt = checkpoints.Checkpointer(os.path.join(wd, "checkpoints"))
    assert ckpt.latest_step() == 10
    restored = ckpt.restore_latest(good)
    ckpt.close()
    assert _leaves_equal(restored, good)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored))


def test_invalid_configs_are_clear_errors(smoke_config):
    cases = [
        ("loss", "lsif", "divergence", "kl", "Invalid pairing"),
        ("prior.name", "cauchy", None, None, "Unknown prior 'cauchy'"),
        ("data.name", "moons", None, None, "Unknown dataset 'moons'"),
        ("model.name", "vit", None, None, "Unknown model 'vit'"),
        ("model.name", "resnet", None, None, "needs image data"),
        ("flow.eta", -1.0, None, None, "`flow.eta` must be a finite number > 0"),
        ("train.ema_decay", 1.0, None, None, r"`train.ema_decay` must be .* in \[0, 1\)"),
    ]
    for field, value, field2, value2, msg in cases:
        c = configlib.apply_args(configlib.default_config(), "smoke")
        for f, v in ((field, value), (field2, value2)):
            if f:
                configlib.set_path(c, f, v)
        with pytest.raises(ValueError, match=msg):
            build_experiment(c)


def test_missing_data_file_is_a_clear_error(smoke_config, tmp_path):
    smoke_config.data.name = "points"
    smoke_config.data.path = str(tmp_path / "nope.npy")
    with pytest.raises(FileNotFoundError, match="nope.npy.*does not exist"):
        run.train(smoke_config, str(tmp_path / "run"))


def test_point_cloud_trains_and_ddp_prior_fits_it(smoke_config, tmp_path):
    pts = np.random.default_rng(0).normal(size=(300, 3)) * [1.0, 2.0, 0.5] + 3.0
    np.save(tmp_path / "cloud.npy", pts)
    smoke_config.data.name = "points"
    smoke_config.data.path = str(tmp_path / "cloud.npy")
    smoke_config.prior.name = "ddp"
    exp = build_experiment(smoke_config)
    np.testing.assert_allclose(exp.prior.mean, pts.mean(0), rtol=1e-5)
    state = run.train(smoke_config, str(tmp_path / "run"))
    assert state.params["Dense_0"]["kernel"].shape == (3, 64)  # the MLP took D = 3 inputs
    assert np.all(np.isfinite(jnp.concatenate([x.ravel() for x in jax.tree.leaves(state.params)])))


def test_sampling_with_a_different_config_warns(smoke_config, tmp_path):
    wd = str(tmp_path / "run")
    run.train(smoke_config, wd)
    assert run.warn_if_config_differs(smoke_config, wd) == []
    smoke_config.flow.eta = 0.123
    smoke_config.sample.num_samples = 7  # sampling fields may differ freely
    assert run.warn_if_config_differs(smoke_config, wd) == ["flow.eta"]


def test_unwritable_workdir_fails_before_training(smoke_config, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match="Cannot write to --workdir"):
        run.train(smoke_config, str(blocker / "run"))


def test_sampling_more_then_truncating_gives_the_same_first_samples(smoke_config):
    # make_sample_fn pads n to the device count; that must not change the first n samples.
    from fdrl_jax import sampling

    exp = build_experiment(smoke_config)
    _, tx = train.make_step_fn(exp)
    variables = train.initial_state(exp, tx).variables
    fn = sampling.make_sample_fn(exp)
    key = jax.random.PRNGKey(0)
    np.testing.assert_allclose(fn(variables, key, 10), fn(variables, key, 16)[:10], rtol=1e-6)
