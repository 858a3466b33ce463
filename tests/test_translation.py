"""How well a translation kept each image's content (`evaluation/translation.py`)."""

import numpy as np

from fdrl_jax.evaluation.translation import content_kept


def test_content_kept_is_one_for_identity_and_about_half_for_unrelated():
    x = np.random.default_rng(0).normal(size=(400, 8, 8, 1))
    assert content_kept(x, x) == 1.0
    y = np.random.default_rng(1).normal(size=x.shape)
    assert 0.4 < content_kept(x, y) < 0.6
