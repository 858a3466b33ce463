"""Sample-quality metrics for vectors (`evaluation/toy_metrics.py`) against closed forms."""

import jax
import numpy as np

from fdrl_jax.evaluation import energy_distance, sliced_wasserstein2


def test_energy_distance_closed_form_for_point_masses():
    x, y = np.zeros((50, 2)), np.ones((60, 2))
    # 2 E|X−Y| − E|X−X'| − E|Y−Y'| = 2·√2.
    np.testing.assert_allclose(energy_distance(x, y), 2 * np.sqrt(2), rtol=1e-4)


def test_energy_distance_near_zero_for_equal_laws_and_positive_otherwise():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    c = rng.normal(size=(2000, 2)) + [1.0, 0.0]
    assert abs(float(energy_distance(a, b))) < 0.01
    assert float(energy_distance(a, c)) > 0.2


def test_sliced_w2_of_a_shift():
    x = np.random.default_rng(0).normal(size=(1000, 2))
    c = np.array([0.6, -0.8])  # |c| = 1; E_θ (θ·c)² = |c|²/D = 1/2 for θ uniform on the circle
    sw = float(sliced_wasserstein2(x, x + c, jax.random.PRNGKey(0), 4096))
    np.testing.assert_allclose(sw, np.sqrt(0.5), rtol=0.03)
