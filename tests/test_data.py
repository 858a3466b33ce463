"""The 2D toys and point clouds (`data/toy.py`, `data/__init__.py`): the paper's
distributions, files, and clear errors."""

import jax
import ml_collections
import numpy as np
import pytest
from sklearn.datasets import make_swiss_roll

from fdrl_jax.data import build_data, load_point_cloud, toy
from fdrl_jax.evaluation import energy_distance


def test_swissroll_has_sklearns_distribution():
    ours = np.asarray(toy.swissroll(jax.random.PRNGKey(0), 3000))
    ref = make_swiss_roll(3000, noise=0.25, random_state=0)[0][:, [0, 2]] / 7.5
    other = make_swiss_roll(3000, noise=0.25, random_state=1)[0][:, [0, 2]] / 7.5
    floor = float(energy_distance(other, ref))
    assert float(energy_distance(ours, ref)) < 3 * floor + 1e-3


@pytest.mark.parametrize(
    "name,n_modes,std,scale", [("8gaussians", 8, 0.02, 1.414), ("25gaussians", 25, 0.05, 2.828)]
)
def test_mixtures_have_the_spec_modes_and_spread(name, n_modes, std, scale):
    x = np.asarray(toy.TOY_SAMPLERS[name](jax.random.PRNGKey(0), 20_000))
    modes = toy.TOY_MODES[name]()
    assert modes.shape == (n_modes, 2)
    d = np.linalg.norm(x[:, None] - modes[None], axis=-1)
    nearest = d.argmin(1)
    assert len(np.unique(nearest)) == n_modes
    resid = x - modes[nearest]
    np.testing.assert_allclose(resid.std(0), [std / scale] * 2, rtol=0.05)


def test_chasm_target():
    x = np.asarray(toy.chasm_target(jax.random.PRNGKey(0), 50_000))
    np.testing.assert_allclose(x.mean(0), [6.0, 6.0], atol=0.01)
    np.testing.assert_allclose(x.var(0), [0.1, 0.1], rtol=0.03)


def test_point_cloud_from_npy_and_npz(tmp_path):
    pts = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    np.save(tmp_path / "p.npy", pts)
    np.savez(tmp_path / "p.npz", cloud=pts, other=pts[:5])
    for src in (
        load_point_cloud(str(tmp_path / "p.npy")),
        load_point_cloud(str(tmp_path / "p.npz"), "cloud"),
    ):
        assert src.shape == (3,)
        batch = np.asarray(src.sample(jax.random.PRNGKey(0), 16))
        assert batch.shape == (16, 3)
        assert all((row == pts).all(1).any() for row in batch)  # drawn from the file


def test_point_cloud_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_point_cloud(str(tmp_path / "missing.npy"))
    np.save(tmp_path / "bad.npy", np.zeros((10, 2, 2)))
    with pytest.raises(ValueError, match=r"shape \(N>=2, D\)"):
        load_point_cloud(str(tmp_path / "bad.npy"))
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 2)), b=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="data.key"):
        load_point_cloud(str(tmp_path / "two.npz"))
    np.save(tmp_path / "nan.npy", np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="finite"):
        load_point_cloud(str(tmp_path / "nan.npy"))


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown dataset 'moons'.*data.name"):
        build_data(ml_collections.ConfigDict({"name": "moons"}))
