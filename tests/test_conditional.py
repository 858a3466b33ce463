"""Class-conditional sampling: the composed ratio (Eq. 12 / 29-31) in closed form, and the CLI."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import conditional, configlib, divergences, priors, run, sampling, train
from fdrl_jax.models import MLP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 4  # classes


def _estimator(d=3):
    net = MLP(hidden=16, num_hidden_layers=2)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, d)))
    return net.apply, params


def _linear_classifier(d=3):
    w = jax.random.normal(jax.random.PRNGKey(7), (d, N))
    return lambda x: jnp.tanh(x) @ w  # logits (B, N)


def _grad(potential, x):
    return jax.grad(lambda y: jnp.sum(potential(y)))(x)


X = jax.random.normal(jax.random.PRNGKey(3), (6, 3))
LABELS = jnp.arange(6) % N


@pytest.mark.parametrize("div", ["chi2", "kl", "js", "logd"])
def test_a_uniform_classifier_leaves_the_flow_unconditional(div):
    apply_fn, params = _estimator()
    fprime, output = divergences.FPRIMES[div], divergences.FPRIME_INPUT[div]
    uniform = lambda x: jnp.zeros((x.shape[0], N))  # p(y|x) = 1/N: N p = 1  # noqa: E731
    cond = conditional.make_conditional_potential(
        apply_fn, params, fprime, output, uniform, LABELS, phi=0.7
    )
    uncond = lambda x: fprime(apply_fn(params, x))  # noqa: E731
    np.testing.assert_allclose(_grad(cond, X), _grad(uncond, X), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("div", ["chi2", "kl", "js", "logd"])
def test_phi_zero_gives_the_unconditional_samples_exactly(div):
    apply_fn, params = _estimator()
    fprime, output = divergences.FPRIMES[div], divergences.FPRIME_INPUT[div]
    prior = priors.gaussian_prior((3,))
    key = jax.random.PRNGKey(11)
    kw = {"num_steps": 20, "eta": 0.1, "nu": 0.01}
    ref = sampling.sample(apply_fn, params, prior, fprime, key, 6, **kw)
    got = conditional.conditional_sample(
        apply_fn,
        params,
        lambda p, x: _linear_classifier()(x) * p,
        jnp.float32(5.0),
        prior,
        key,
        LABELS,
        fprime=fprime,
        output=output,
        phi=0.0,
        **kw,
    )
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_conditional_sampler_takes_the_flow_length_at_run_time(smoke_config):
    from fdrl_jax.experiment import build_experiment

    exp = build_experiment(smoke_config)  # 2D swiss roll; a linear 4-class classifier
    _, tx = train.make_step_fn(exp)
    v = train.initial_state(exp, tx).variables
    traces = []

    def classifier(p, x):
        traces.append(1)  # traced once per compiled program
        return jnp.tanh(x) @ p

    cp = jax.random.normal(jax.random.PRNGKey(7), (2, N))
    fn = conditional.make_conditional_sample_fn(exp, classifier, 0.5, num_steps=3)
    key, labels = jax.random.PRNGKey(2), np.arange(6) % N
    three = fn(v, cp, key, labels)
    for steps in (1, 7):
        want = conditional.make_conditional_sample_fn(exp, classifier, 0.5, num_steps=steps)
        np.testing.assert_array_equal(
            fn(v, cp, key, labels, num_steps=steps), want(v, cp, key, labels)
        )
    np.testing.assert_array_equal(fn(v, cp, key, labels), three)
    # fn's program, then one for each of the two reference samplers
    assert len(traces) == 3


def test_kl_is_eq31_and_phi_one_is_eq12():
    apply_fn, params = _estimator()
    logits = _linear_classifier()
    phi = 0.3
    cond = conditional.make_conditional_potential(
        apply_fn, params, divergences.kl_fprime, "log_ratio", logits, LABELS, phi
    )

    def log_p(x):
        return jnp.take_along_axis(jax.nn.log_softmax(logits(x)), LABELS[:, None], 1)[:, 0]

    # Eq. 31: ∇(log r − φ log p(y|x))
    eq31 = lambda x: apply_fn(params, x) - phi * log_p(x)  # noqa: E731
    np.testing.assert_allclose(_grad(cond, X), _grad(eq31, X), rtol=1e-5, atol=1e-6)
    # Eq. 12 / 29 at φ = 1: log r(x|y) = log r(x) − log N − log p(y|x), value and all
    out = apply_fn(params, X)
    lr = conditional.log_class_ratio(logits(X), LABELS)
    np.testing.assert_allclose(
        conditional.compose_output(out, lr, 1.0, "log_ratio"),
        out - jnp.log(N) - log_p(X),
        rtol=1e-6,
        atol=1e-6,
    )


def test_lsif_chi2_divides_the_ratio():
    apply_fn, params = _estimator()
    logits = _linear_classifier()
    phi = 0.5
    cond = conditional.make_conditional_potential(
        apply_fn, params, divergences.chi2_fprime, "ratio", logits, LABELS, phi
    )
    p = jnp.take_along_axis(jax.nn.softmax(logits(X)), LABELS[:, None], 1)[:, 0]
    expected = 2.0 * apply_fn(params, X) / (N * p) ** phi  # f'(r / (N p)^φ), f' = 2r
    np.testing.assert_allclose(cond(X), expected, rtol=1e-5)


def test_each_sample_flows_towards_its_own_label():
    # log r ≡ 0 (no pull from the estimator); the classifier prefers +x₀ for class 0 and −x₀
    # for class 1, so with KL the flow is gradient ascent on φ log p(y|x) per sample.
    zero_net = lambda v, x: jnp.zeros(x.shape[0])  # noqa: E731
    logits_fn = lambda p, x: jnp.stack([x[:, 0], -x[:, 0]], -1)  # noqa: E731
    labels = jnp.array([0, 1] * 50)
    x = conditional.conditional_sample(
        zero_net,
        None,
        logits_fn,
        None,
        priors.gaussian_prior((2,)),
        jax.random.PRNGKey(0),
        labels,
        fprime=divergences.kl_fprime,
        output="log_ratio",
        phi=1.0,
        num_steps=50,
        eta=0.5,
        nu=0.0,
    )
    assert np.all(np.asarray(x[labels == 0, 0]) > 1.0)
    assert np.all(np.asarray(x[labels == 1, 0]) < -1.0)


@pytest.mark.slow
def test_run_conditional_sample_writes_per_class_outputs(tmp_path):
    config = configlib.load_config(os.path.join(ROOT, "configs", "digits.py") + ":smoke")
    workdir = str(tmp_path)
    run.train(config, workdir)
    config.classifier.update({"num_steps": 20, "hidden": 16, "features": (4,)})
    with pytest.raises(FileNotFoundError, match="mode=classifier"):
        run.conditional(config, workdir)
    run.classifier(config, workdir)
    config.conditional.update({"num_samples": 6, "grid_size": 3, "label": 3})
    result = run.conditional(config, workdir)
    out = os.path.join(workdir, "eval", "conditional")
    assert list(result["per_label"]) == ["3"]
    with np.load(os.path.join(out, "samples_label3.npz")) as z:
        assert z["samples"].shape == (6, 8, 8, 1) and z["images"].dtype == np.uint8
        assert int(z["label"]) == 3
    config.conditional.label = -1
    result = run.conditional(config, workdir)
    assert sorted(result["per_label"], key=int) == [str(y) for y in range(10)]
    for y in range(10):
        assert os.path.exists(os.path.join(out, f"grid_label{y}.png"))
    assert os.path.exists(os.path.join(out, "grid_all.png"))
    with open(os.path.join(out, "metrics.json")) as f:
        assert "digits_logreg_accuracy" in json.load(f)["per_label"]["0"]
    config.conditional.label = 10
    with pytest.raises(ValueError, match="10 classes"):
        run.conditional(config, workdir)


SHARDED_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
from fdrl_jax import classifier as clf, conditional, configlib, parallel, train
from fdrl_jax.experiment import build_experiment
c = configlib.load_config("configs/digits.py:smoke")
exp = build_experiment(c)
_, tx = train.make_step_fn(exp)
v = train.initial_state(exp, tx).variables
net = clf.build_classifier(c.classifier, 10)
cp = net.init(jax.random.PRNGKey(1), jnp.zeros((1, 8, 8, 1)))["params"]
labels = np.arange(10) % 10  # 10 samples: padded to 12 on 4 devices
apply = lambda p, x: net.apply({"params": p}, x)
one = conditional.make_conditional_sample_fn(exp, apply, 0.5, 4)
four = conditional.make_conditional_sample_fn(exp, apply, 0.5, 4, mesh=parallel.make_mesh())
a = np.asarray(one(v, cp, jax.random.PRNGKey(2), labels))
b = four(v, cp, jax.random.PRNGKey(2), labels)
assert len(b.sharding.device_set) == 4  # the flow really ran on every device
b = np.asarray(b)
assert jax.device_count() == 4 and a.shape == b.shape == (10, 8, 8, 1)
np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
print("OK")
"""


@pytest.mark.slow
def test_conditional_sampling_sharded_over_devices_equals_one_device():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(
        os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4"
    )
    out = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]
