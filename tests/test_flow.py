import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax import flow_lib as fl


def _quadratic(m):
    # The potential ½|x - m|²: the flow x ← x − η(x − m) has the closed form
    # x_k − m = (1 − η)^k (x_0 − m) when ν = 0.
    return lambda x: 0.5 * jnp.sum(jnp.square(x - m), axis=-1)


def test_deterministic_flow_matches_closed_form():
    m = jnp.array([3.0, -1.0])
    x0 = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
    xk = fl.flow(_quadratic(m), x0, jax.random.PRNGKey(1), 10, eta=0.2, nu=0.0)
    np.testing.assert_allclose(xk - m, (0.8**10) * (x0 - m), rtol=1e-5, atol=1e-6)


def test_package_level_flow_and_flow_step_are_the_library_functions():
    import fdrl_jax as fd

    m = jnp.array([3.0, -1.0])
    x0 = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    one = fd.flow_step(_quadratic(m), x0, jax.random.PRNGKey(1), 0.2, 0.0)
    np.testing.assert_allclose(one - m, 0.8 * (x0 - m), rtol=1e-5, atol=1e-6)  # closed form
    assert fd.flow is fl.flow and fd.flow_step is fl.flow_step


def test_noise_has_the_expected_scale():
    x0 = jnp.zeros((20_000, 2))
    xk = fl.flow(lambda x: jnp.zeros(x.shape[0]), x0, jax.random.PRNGKey(0), 4, eta=1.0, nu=0.1)
    # Four independent N(0, 0.1²) increments: std 0.2.
    np.testing.assert_allclose(np.std(np.asarray(xk)), 0.2, rtol=0.02)


def test_flow_with_analytic_ratio_moves_particles_to_the_target():
    # KL flow with the exact ratio r = q_k/p for p = N(m, I), where q_k = N(mu_k, I) is the
    # particles' current law (mu_k their mean): the potential an ideal estimator provides.
    m = jnp.array([2.0, 2.0])
    x = jax.random.normal(jax.random.PRNGKey(0), (2048, 2))
    key = jax.random.PRNGKey(1)
    for k in range(40):
        mu_q = jnp.mean(x, axis=0)

        def log_r(y, mu_q=mu_q):
            return -0.5 * jnp.sum((y - mu_q) ** 2, -1) + 0.5 * jnp.sum((y - m) ** 2, -1)

        x = fl.flow(log_r, x, jax.random.fold_in(key, k), 1, eta=0.1, nu=0.0)
    np.testing.assert_allclose(np.mean(np.asarray(x), axis=0), np.asarray(m), atol=0.05)


def test_split_flow_and_trajectory_equal_one_flow():
    m = jnp.array([1.0, 0.5])
    pot = _quadratic(m)
    x0 = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    key = jax.random.PRNGKey(3)
    full = fl.flow(pot, x0, key, 12, 0.1, 0.05)
    first = fl.flow(pot, x0, key, 5, 0.1, 0.05)
    second = fl.flow(pot, first, key, 7, 0.1, 0.05, start_step=5)
    np.testing.assert_allclose(second, full, rtol=1e-6)
    xk, traj = fl.flow(pot, x0, key, 12, 0.1, 0.05, record_at=(0, 5, 12))
    np.testing.assert_allclose(xk, full, rtol=1e-6)
    np.testing.assert_allclose(traj[0], x0)
    np.testing.assert_allclose(traj[1], first, rtol=1e-6)
    np.testing.assert_allclose(traj[2], full, rtol=1e-6)


def test_no_gradient_flows_back_through_the_chain():
    def end_sum(x0):
        return jnp.sum(fl.flow(_quadratic(jnp.ones(2)), x0, jax.random.PRNGKey(0), 3, 0.1, 0.0))

    g = jax.grad(end_sum)(jnp.ones((4, 2)))
    np.testing.assert_array_equal(g, np.zeros((4, 2)))


def test_make_potential_composes_network_and_fprime():
    pot = fl.make_potential(lambda p, x: p * jnp.sum(x, -1), 2.0, lambda o: 3.0 * o)
    np.testing.assert_allclose(pot(jnp.ones((2, 3))), [18.0, 18.0])
