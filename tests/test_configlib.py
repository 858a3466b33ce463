"""The config machinery (`configlib`): the config argument, the smoke variant, and every
override valid or a clear error."""

import math

import ml_collections
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice
from fdrl_jax.errors import ConfigError, UserError
from fdrl_jax.experiment import build_experiment


def _arg(text):
    return configlib.parse_arg(text, pairing=choice("lsif-chi2", PAIRINGS), smoke=False, n=3)


def test_config_arguments_by_name_flag_or_option():
    assert _arg(None).to_dict() == {"pairing": "lsif-chi2", "smoke": False, "n": 3}
    assert _arg("lr-kl,smoke").to_dict() == {"pairing": "lr-kl", "smoke": True, "n": 3}
    assert _arg(" pairing=lr-js , smoke=false,n=7").to_dict() == {
        "pairing": "lr-js",
        "smoke": False,
        "n": 7,
    }
    for bad, message in (
        ("lr-xx", "Unknown config argument 'lr-xx'.*lsif-chi2 | lr-kl.*smoke"),
        ("pairing=tv", "choose one of"),
        ("smoke=maybe", "True or False"),
        ("n=x", "give a int"),
        ("spec", "Unknown config argument 'spec'"),
    ):
        with pytest.raises(ConfigError, match=message):
            _arg(bad)


def test_flatten_names_every_field_and_keeps_empty_sections():
    nested = {"flow": {"eta": 0.2, "nu": 0.0}, "stats": {}, "seed": 1}
    assert configlib.flatten(nested) == {"flow.eta": 0.2, "flow.nu": 0.0, "stats": {}, "seed": 1}


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
# What ConfigDict itself raises for an unknown field or a value of another type (on the
# command line these are parsing errors: `errors.FlagError`, see test_cli.py).
CONFIGDICT_REFUSES = (KeyError, AttributeError, TypeError)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=4),
    st.booleans(),
)
def test_every_override_is_valid_or_a_clear_error(overrides, smoke):
    cfg = configlib.default_config()
    if smoke:
        configlib.smoke(cfg)
    try:
        for path, value in overrides:
            configlib.set_path(cfg, path, value)
    except CONFIGDICT_REFUSES:
        return
    try:
        build_experiment(cfg)
    except UserError as e:  # the project's user errors only: a bare ValueError is a bug
        msg = str(e)
        assert len(msg) > 10 and "\n" not in msg, f"unclear error: {e!r}"
        return
    # Accepted: the config is fully valid.
    configlib.validate(cfg)
    assert cfg.flow.eta > 0 and math.isfinite(cfg.flow.eta)
    assert cfg.train.batch_size >= 1 and 0 <= cfg.train.ema_decay < 1


@given(st.text(max_size=20))
def test_config_arguments_are_known_or_rejected(arg):
    try:
        _arg(arg)
    except ConfigError as e:
        assert "config argument" in str(e).lower()
