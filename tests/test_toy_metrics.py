"""Sample-quality metrics for vectors (`evaluation/toy_metrics.py`) against closed forms and
sets with known answers."""

import jax
import numpy as np

from fdrl_jax.evaluation import energy_distance, sliced_wasserstein2
from fdrl_jax.evaluation.toy_metrics import c2st, mode_coverage, support


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


def test_c2st_known_accuracies():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2))
    assert c2st(a, a + 100.0) == 1.0  # disjoint: every fold fully separable
    assert abs(c2st(a, b) - 0.5) < 0.05  # one law: chance
    # N(0, 1) against N(2, 1) in 1D: the Bayes accuracy Φ(1) = 0.841, which 15-NN nears.
    x, y = rng.normal(size=(2000, 1)), rng.normal(size=(2000, 1)) + 2.0
    assert abs(c2st(x, y) - 0.8413) < 0.03
    # The larger set is cut to the smaller's size, not compared unbalanced.
    assert c2st(np.concatenate([a, a + 100.0]), b) == c2st(a, b)


def test_support_precision_and_recall_of_known_sets():
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 50.0])
    assert support(data, data) == {"precision": 1.0, "recall": 1.0}
    # Half the samples far from every data point: precision 0.5; the data are all reached.
    far = np.concatenate([data, data + 1000.0])
    assert support(far, data) == {"precision": 0.5, "recall": 1.0}
    # Samples on one of the two clusters only (a dropped mode): precision 1, recall 0.5.
    assert support(data[:200], data) == {"precision": 1.0, "recall": 0.5}
    # The ball of each point reaches its k-th nearest neighbour: data 0, 1, ..., 9 in 1D;
    # 0, 5 and 9.8 are inside balls (9's radius is 1 at k = 1); 10.5 is not, until k = 2.
    line, samples = np.arange(10.0)[:, None], np.array([[0.0], [5.0], [9.8], [10.5]])
    assert support(samples, line, k=1)["precision"] == 0.75
    assert support(samples, line, k=2)["precision"] == 1.0


def test_mode_coverage_counts_samples_near_each_mode():
    modes, std = np.array([[0.0, 0.0], [10.0, 0.0]]), 1.0
    x = np.array([[0.0, 0.0], [0.0, 3.9], [0.1, 0.0], [10.0, 0.0], [50.0, 50.0]])
    cov = mode_coverage(x, modes, std)  # within 4 std: 3 near the first mode, 1 the second
    assert cov["in_mode_fraction"] == 0.8 and cov["mode_shares"] == [0.6, 0.2]
    assert cov["modes_covered"] == 2 and cov["num_modes"] == 2
    assert mode_coverage(x + [0.0, 0.2], modes, std)["mode_shares"] == [0.4, 0.2]  # 4.1 std out
    # A mode with under a quarter of its fair share (1/2) is not covered: 1 of 20 samples.
    lopsided = np.concatenate([np.zeros((19, 2)), [[10.0, 0.0]]])
    assert mode_coverage(lopsided, modes, std)["modes_covered"] == 1
