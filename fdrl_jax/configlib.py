"""The base config every experiment starts from, config-argument variants, and validation.

Config files in `configs/` import from here (not from each other), so they load from any
working directory once the package is installed.
"""

from __future__ import annotations

import math

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

    # --mode=gan: a small GAN on the same data (a base model for DGflow refinement).
    c.gan = ml_collections.ConfigDict()
    c.gan.num_steps = 2_000
    c.gan.batch_size = 256
    c.gan.lr = 2e-4
    c.gan.latent_dim = 2
    c.gan.num_samples = 5_000

    # --mode=refine: DGflow refinement of the samples in `refine.input` (.npz).
    c.refine = ml_collections.ConfigDict()
    c.refine.input = ""  # e.g. <workdir>/gan/samples.npz
    c.refine.key = "samples"
    c.refine.source = "discriminator"  # discriminator | estimator (this run's FDRL estimator)
    c.refine.discriminator = ""  # params .npz of a `model`-shaped logit net (--mode=gan's)
    c.refine.divergence = "kl"  # kl | js | logd (discriminator source)
    c.refine.num_steps = 25
    c.refine.eta = 0.01
    c.refine.gamma = 0.0
    c.refine.seed = 3

    c.eval = ml_collections.ConfigDict()
    c.eval.num_samples = 10_000  # energy distance at 2k samples is too noisy for a 5% bar
    c.eval.num_projections = 512  # sliced Wasserstein directions
    c.eval.seed = 2
    return c


def cpu_toy_settings(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Settings that train a 2D toy to the quality bar in minutes on a 2-core CPU.

    The SPEC's (20k steps, batch 1024, K = 200, lr 5e-5, η = 1) take ~30 min per run there, and
    η = 1 is too large a step for the sharp 8/25-Gaussian modes (std 0.014 / 0.018 after
    scaling): particles overshoot the modes and scatter or run away. Measured choices
    (benchmarks/RESULTS.md): the swiss roll trains with η = 0.2, K = 100, lr 2e-4; the
    mixtures with η = 0.1 (0.05 for LSIF, whose unbounded r makes the flow stiffer), K = 200,
    lr 5e-5 (25 Gaussians: lr 2e-4 for 12k steps; LSIF lr 1e-4 for 16k). Reads
    `config.data.name` and `config.loss`, so set those first.
    """
    config.train.num_steps = 6_000
    config.train.batch_size = 512
    config.optim.decay_steps = (4_000, 5_000)
    config.train.sample_every = 2_000
    config.flow.kappa = 0
    if config.data.name == "swissroll":
        config.flow.num_steps, config.flow.eta, config.optim.lr = 100, 0.2, 2e-4
    else:
        config.flow.num_steps, config.optim.lr = 200, 5e-5
        config.flow.eta = 0.05 if config.loss == "lsif" else 0.1
    if config.data.name == "25gaussians":
        # 25 modes take the estimator longer to resolve: at 6k steps and lr 5e-5 it stayed at
        # chance while the samples were still radial streaks.
        config.optim.lr = 2e-4
        config.train.num_steps = 12_000
        config.optim.decay_steps = (8_000, 10_000)
        if config.loss == "lsif":  # at lr 2e-4 it drifted after ~11k steps; slower and longer
            config.optim.lr = 1e-4
            config.train.num_steps = 16_000
            config.optim.decay_steps = (12_000, 14_000)
    return config


def toy_config(dataset: str, arg: str | None) -> ml_collections.ConfigDict:
    """A 2D toy's config: `cpu_toy_settings` unless the argument holds `spec`."""
    config = apply_args(default_config(), arg)
    config.data.name = dataset
    if "spec" not in _tokens(arg):
        cpu_toy_settings(config)
        apply_args(config, arg)  # `smoke` shrinks the CPU settings too
    return config


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
            config.gan.num_steps = 50
            config.gan.num_samples = 256
        else:
            raise ValueError(
                f"Unknown config argument {token!r}; use 'smoke', 'spec' and/or a pairing "
                f"from {sorted(PAIRINGS)}, comma-separated (e.g. ':lr-kl,smoke')."
            )
    return config


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _int_in(lo: float, hi: float = math.inf):
    return lambda v: _is_int(v) and lo <= v <= hi, f"an integer in [{lo}, {hi}]"


def _num(pred, text: str):
    return lambda v: _is_num(v) and pred(v), f"a finite number {text}"


_BOOL = (lambda v: isinstance(v, bool), "True or False")

# field -> (predicate, what it must be). Names are checked against the registries separately.
RULES = {
    "seed": _int_in(0, 2**31 - 1),
    "stale_estimator": _BOOL,
    "data.path": (lambda v: isinstance(v, str), "a file path (string)"),
    "data.key": (lambda v: v is None or isinstance(v, str), "an array name or None"),
    "prior.mean": _num(lambda v: True, ""),
    "prior.std": _num(lambda v: v > 0, "> 0"),
    "prior.low": _num(lambda v: True, ""),
    "prior.high": _num(lambda v: True, ""),
    "prior.jitter": _num(lambda v: v >= 0, ">= 0"),
    "prior.fit_samples": _int_in(2, 10**7),
    "prior.clip": _BOOL,
    "model.hidden": _int_in(1, 65_536),
    "model.num_hidden_layers": _int_in(0, 64),
    "flow.num_steps": _int_in(0, 10**6),
    "flow.kappa": _int_in(0, 10**6),
    "flow.eta": _num(lambda v: v > 0, "> 0"),
    "flow.nu": _num(lambda v: v >= 0, ">= 0"),
    "optim.lr": _num(lambda v: v > 0, "> 0"),
    "optim.b1": _num(lambda v: 0 <= v < 1, "in [0, 1)"),
    "optim.b2": _num(lambda v: 0 <= v < 1, "in [0, 1)"),
    "optim.decay_factor": _num(lambda v: 0 < v <= 1, "in (0, 1]"),
    "optim.decay_steps": (
        lambda v: isinstance(v, (tuple, list)) and all(_is_int(s) and s >= 0 for s in v),
        "a tuple of step numbers >= 0, e.g. (5000, 10000)",
    ),
    "train.batch_size": _int_in(1, 10**7),
    "train.num_steps": _int_in(0, 10**9),
    "train.ema_decay": _num(lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.log_every": _int_in(1),
    "train.checkpoint_every": _int_in(1),
    "train.sample_every": _int_in(1),
    "train.max_checkpoints": _int_in(1, 10**4),
    "train.max_abs_output": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
        "a number > 0 (inf disables the bound)",
    ),
    "train.on_divergence": (lambda v: v in ("stop", "rollback"), "'stop' or 'rollback'"),
    "train.rollback_lr_factor": _num(lambda v: 0 < v < 1, "in (0, 1)"),
    "train.max_rollbacks": _int_in(0, 100),
    "sample.num_samples": _int_in(1, 10**8),
    "sample.clip_output": _BOOL,
    "sample.seed": _int_in(0, 2**31 - 1),
    "gan.num_steps": _int_in(0, 10**8),
    "gan.batch_size": _int_in(1, 10**6),
    "gan.lr": _num(lambda v: v > 0, "> 0"),
    "gan.latent_dim": _int_in(1, 10**5),
    "gan.num_samples": _int_in(1, 10**8),
    "refine.input": (lambda v: isinstance(v, str), "a path to an .npz (string)"),
    "refine.key": (lambda v: isinstance(v, str), "an array name (string)"),
    "refine.source": (
        lambda v: v in ("discriminator", "estimator"),
        "'discriminator' or 'estimator'",
    ),
    "refine.discriminator": (lambda v: isinstance(v, str), "a path to a params .npz (string)"),
    "refine.divergence": (lambda v: v in ("kl", "js", "logd"), "'kl', 'js' or 'logd'"),
    "refine.num_steps": _int_in(0, 10**6),
    "refine.eta": _num(lambda v: v > 0, "> 0"),
    "refine.gamma": _num(lambda v: v >= 0, ">= 0"),
    "refine.seed": _int_in(0, 2**31 - 1),
    "eval.num_samples": _int_in(2, 10**7),
    "eval.num_projections": _int_in(1, 10**5),
    "eval.seed": _int_in(0, 2**31 - 1),
}


def _get(config, path: str):
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def validate(config: ml_collections.ConfigDict) -> None:
    """Names known, pairing valid, every field typed and in range.

    Raises ValueError naming the field and what it must be.
    """
    from fdrl_jax import data, models, priors  # local: avoid import cycles

    for path, (ok, what) in RULES.items():
        try:
            value = _get(config, path)
        except (KeyError, AttributeError):
            raise ValueError(f"Invalid config: field `{path}` is missing.") from None
        if not ok(value):
            raise ValueError(f"Invalid config: `{path}` must be {what}; got {value!r}.")
    names = {
        "loss": (config.loss, divergences.LOSSES),
        "divergence": (config.divergence, divergences.FPRIMES),
        "prior.name": (config.prior.name, priors.PRIORS),
        "model.name": (config.model.name, models.MODELS),
        "data.name": (config.data.name, [*data.TOY_SAMPLERS, "points"]),
    }
    for path, (value, known) in names.items():
        if not isinstance(value, str) or value not in known:
            kind = {"divergence": "divergence", "loss": "loss"}.get(path, path.split(".")[0])
            kind = "dataset" if kind == "data" else kind
            raise ValueError(
                f"Unknown {kind} {value!r}; choose one of {sorted(known)} (config field `{path}`)."
            )
    divergences.check_pairing(config.loss, config.divergence)
    if config.model.name == "resnet":  # every dataset so far is vectors (N, D)
        raise ValueError(
            "Invalid config: `model.name` = 'resnet' needs image data (N, H, W, C), and "
            f"dataset {config.data.name!r} holds vectors; use model.name = 'mlp'."
        )
    if config.flow.num_steps + config.flow.kappa < 1:
        raise ValueError("Invalid config: `flow.num_steps` + `flow.kappa` must be >= 1.")
    if config.prior.low >= config.prior.high:
        raise ValueError("Invalid config: `prior.low` must be < `prior.high`.")
