"""The base config every experiment starts from, config-argument variants, and validation.

Config files in `configs/` import from here (not from each other), so they load from any
working directory once the package is installed.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from fdrl_jax import divergences

# `--config=configs/x.py:lr-js` selects the paper's pairings by name.
PAIRINGS = {
    "lsif-chi2": ("lsif", "chi2"),
    "lr-kl": ("lr", "kl"),
    "lr-js": ("lr", "js"),
    "lr-logd": ("lr", "logd"),
}


def default_config() -> ml_collections.ConfigDict:
    """Every field a run reads, set for the 2D toys (SPEC "Datasets": batch 1024, K=200...)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.loss = "lsif"  # Bregman loss: lsif | lr | kliep
    c.divergence = "chi2"  # f of the flow: chi2 | kl | js | logd
    # DGflow-style stale estimator (paper Sec. 3.1): train r on prior vs data without flowing;
    # sampling still flows K+κ steps with it.
    c.stale_estimator = False

    c.data = ml_collections.ConfigDict()
    c.data.name = "swissroll"  # swissroll | 8gaussians | 25gaussians | chasm | points
    c.data.path = ""  # for `points`: a .npy / .npz file of shape (N, D)
    c.data.key = config_dict.placeholder(str)  # array name inside a .npz

    c.prior = ml_collections.ConfigDict()
    c.prior.name = "gaussian"  # gaussian | uniform | ddp
    c.prior.mean = 0.0
    c.prior.std = 1.0
    c.prior.low = -1.0
    c.prior.high = 1.0
    c.prior.jitter = 1e-4
    c.prior.fit_samples = 50_000  # points drawn from an infinite source to fit the DDP
    c.prior.clip = False  # clamp the prior draw to [-1, 1] (images)

    c.model = ml_collections.ConfigDict()
    c.model.name = "mlp"
    c.model.hidden = 64
    c.model.num_hidden_layers = 3

    c.flow = ml_collections.ConfigDict()
    c.flow.num_steps = 200  # K, at training time
    c.flow.kappa = 20  # extra steps at sampling time (K + κ)
    c.flow.eta = 1.0
    c.flow.nu = 0.01

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 5e-5
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.decay_steps = (5_000, 10_000, 15_000)
    c.optim.decay_factor = 0.1

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 1024
    c.train.num_steps = 20_000
    c.train.ema_decay = 0.998
    c.train.log_every = 100
    c.train.checkpoint_every = 1_000
    c.train.sample_every = 5_000
    c.train.max_checkpoints = 3
    # Divergence guard: a step with a non-finite loss/gradient, or a mean |net output| above
    # this bound, is not applied; then "stop" (with a message) or "rollback" to the last
    # checkpoint with the learning rate × rollback_lr_factor (at most max_rollbacks times).
    c.train.max_abs_output = 1e8
    c.train.on_divergence = "stop"
    c.train.rollback_lr_factor = 0.5
    c.train.max_rollbacks = 3

    c.sample = ml_collections.ConfigDict()
    c.sample.num_samples = 2_000
    c.sample.clip_output = False  # clamp final samples to [-1, 1] (images)
    c.sample.seed = 1

    c.eval = ml_collections.ConfigDict()
    c.eval.num_samples = 2_000
    c.eval.num_projections = 512  # sliced Wasserstein directions
    c.eval.seed = 2
    return c


def cpu_toy_settings(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Settings that train the 2D toys to the quality bar in minutes on a 2-core CPU.

    The SPEC's (20k steps, batch 1024, K = 200, lr 5e-5, η = 1) take ~30 min per run there;
    these were measured to reach the same bar (benchmarks/RESULTS.md). `:spec` keeps the SPEC's.
    """
    config.train.num_steps = 6_000
    config.train.batch_size = 512
    config.flow.num_steps = 100
    config.flow.kappa = 0
    config.flow.eta = 0.2
    config.optim.lr = 2e-4
    config.optim.decay_steps = (4_000, 5_000)
    config.train.sample_every = 2_000
    return config


def toy_config(dataset: str, arg: str | None) -> ml_collections.ConfigDict:
    """A 2D toy's config: `cpu_toy_settings` unless the argument holds `spec`."""
    config = default_config()
    config.data.name = dataset
    if "spec" not in _tokens(arg):
        cpu_toy_settings(config)
    return apply_args(config, arg)


def _tokens(arg: str | None) -> list[str]:
    return [t.strip().lower() for t in (arg or "").split(",") if t.strip()]


def apply_args(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Apply comma-separated config arguments: a pairing name, `spec` and/or `smoke`.

    `smoke` shrinks the run to seconds (tests, quick checks); `spec` keeps the SPEC's toy
    settings where a config file would otherwise use `cpu_toy_settings`; any other token is
    an error.
    """
    for token in _tokens(arg):
        if token == "spec":
            continue
        if token in PAIRINGS:
            config.loss, config.divergence = PAIRINGS[token]
        elif token == "smoke":
            config.train.batch_size = 128
            config.train.num_steps = 20
            config.train.log_every = 5
            config.train.checkpoint_every = 10
            config.train.sample_every = 10
            config.flow.num_steps = 10
            config.flow.kappa = 2
            config.optim.decay_steps = (10, 15)
            config.prior.fit_samples = 2_000
            config.sample.num_samples = 256
            config.eval.num_samples = 256
            config.eval.num_projections = 64
        else:
            raise ValueError(
                f"Unknown config argument {token!r}; use 'smoke', 'spec' and/or a pairing "
                f"from {sorted(PAIRINGS)}, comma-separated (e.g. ':lr-kl,smoke')."
            )
    return config


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(f"Invalid config: {msg}")


def validate(config: ml_collections.ConfigDict) -> None:
    """Names known, pairing valid, numbers in range; each error says which field to change."""
    from fdrl_jax import data, models, priors  # local: avoid import cycles

    divergences.check_pairing(config.loss, config.divergence)
    if config.prior.name not in priors.PRIORS:
        raise ValueError(
            f"Unknown prior {config.prior.name!r}; choose one of "
            f"{sorted(priors.PRIORS)} (config field `prior.name`)."
        )
    if config.model.name not in models.MODELS:
        raise ValueError(
            f"Unknown model {config.model.name!r}; choose one of "
            f"{sorted(models.MODELS)} (config field `model.name`)."
        )
    known_data = sorted([*data.TOY_SAMPLERS, "points"])
    if config.data.name not in known_data:
        raise ValueError(
            f"Unknown dataset {config.data.name!r}; choose one of {known_data} "
            "(config field `data.name`)."
        )
    f, t = config.flow, config.train
    _check(f.num_steps >= 0 and f.kappa >= 0, "flow.num_steps (K) and flow.kappa must be >= 0")
    _check(f.num_steps + f.kappa >= 1, "flow.num_steps + flow.kappa must be >= 1")
    _check(f.eta > 0, f"flow.eta must be > 0, got {f.eta}")
    _check(f.nu >= 0, f"flow.nu must be >= 0, got {f.nu}")
    _check(config.optim.lr > 0, f"optim.lr must be > 0, got {config.optim.lr}")
    _check(0 <= t.ema_decay < 1, f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
    for name in ("batch_size", "log_every", "checkpoint_every", "sample_every", "max_checkpoints"):
        _check(t[name] >= 1, f"train.{name} must be >= 1, got {t[name]}")
    _check(
        t.on_divergence in ("stop", "rollback"),
        f"train.on_divergence must be 'stop' or 'rollback', got {t.on_divergence!r}",
    )
    _check(
        0 < t.rollback_lr_factor < 1,
        f"train.rollback_lr_factor must be in (0, 1), got {t.rollback_lr_factor}",
    )
    _check(
        t.max_rollbacks >= 0 and t.max_abs_output > 0,
        "train.max_rollbacks must be >= 0 and train.max_abs_output > 0",
    )
    _check(t.num_steps >= 0, f"train.num_steps must be >= 0, got {t.num_steps}")
    _check(
        config.sample.num_samples >= 1 and config.eval.num_samples >= 2,
        "sample.num_samples must be >= 1 and eval.num_samples >= 2",
    )
    _check(config.prior.std > 0, f"prior.std must be > 0, got {config.prior.std}")
    _check(config.prior.low < config.prior.high, "prior.low must be < prior.high")
