"""Malformed configs and overrides are accepted and valid, or rejected with a clear error."""

import math

import ml_collections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fdrl_jax import configlib
from fdrl_jax.experiment import build_experiment


def _leaf_paths(cfg: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    out = []
    for k, v in cfg.items():
        p = f"{prefix}{k}"
        out += _leaf_paths(v, p + ".") if isinstance(v, ml_collections.ConfigDict) else [p]
    return out


PATHS = _leaf_paths(configlib.default_config()) + ["flow.etaa", "nonsense", "train.batch"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "lsif",
            "lr",
            "kliep",
            "chi2",
            "kl",
            "js",
            "logd",
            "gaussian",
            "ddp",
            "uniform",
            "mlp",
            "points",
            "8gaussians",
            "rollback",
        ]
    ),
    st.tuples(st.integers(-5, 10**6)),
    st.lists(st.integers(0, 100), max_size=3),
)
CLEAR = (ValueError, TypeError, KeyError, AttributeError)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=4),
    st.sampled_from([None, "smoke", "lr-kl", "lsif-chi2,smoke"]),
)
def test_every_override_is_valid_or_a_clear_error(overrides, arg):
    cfg = configlib.apply_args(configlib.default_config(), arg)
    try:
        for path, value in overrides:
            configlib.set_path(
                cfg, path, value
            )  # ConfigDict itself refuses unknown fields and wrong types
        build_experiment(cfg)
    except CLEAR as e:
        msg = str(e)
        assert len(msg) > 10, f"unclear error: {e!r}"
        return
    # Accepted: the config is fully valid.
    configlib.validate(cfg)
    assert cfg.flow.eta > 0 and math.isfinite(cfg.flow.eta)
    assert cfg.train.batch_size >= 1 and 0 <= cfg.train.ema_decay < 1


@given(st.text(max_size=20))
def test_config_arguments_are_known_or_rejected(arg):
    try:
        configlib.apply_args(configlib.default_config(), arg)
    except ValueError as e:
        assert "Unknown config argument" in str(e)
