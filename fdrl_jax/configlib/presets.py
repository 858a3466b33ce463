"""Presets built on the default config: the 2D toys' CPU settings, the SPEC's image settings,
config arguments (`--config=configs/x.py:lr-kl,smoke`) and loading a config file."""

from __future__ import annotations

import importlib.util
import os

import ml_collections

from fdrl_jax.configlib.defaults import default_config
from fdrl_jax.configlib.fields import override
from fdrl_jax.errors import ConfigError, MissingFileError
from fdrl_jax.models import ARCHS

# `--config=configs/x.py:lr-js` selects the paper's pairings by name.
PAIRINGS = {
    "lsif-chi2": ("lsif", "chi2"),
    "lr-kl": ("lr", "kl"),
    "lr-js": ("lr", "js"),
    "lr-logd": ("lr", "logd"),
}


def cpu_toy_settings(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Settings that train a 2D toy to the quality bar in minutes on a 2-core CPU.

    The SPEC's (20k steps, batch 1024, K = 200, lr 5e-5, η = 1) take ~30 min per run there, and
    η = 1 is too large a step for the sharp 8/25-Gaussian modes (std 0.014 / 0.018 after
    scaling): particles overshoot the modes and scatter or run away. Measured choices
    (benchmarks/RESULTS.md): the swiss roll trains with η = 0.2 (0.1 for LSIF), K = 100,
    lr 2e-4; the mixtures with η = 0.1 (0.05 for LSIF, whose unbounded r makes the flow
    stiffer), K = 200, lr 5e-5 (25 Gaussians: lr 2e-4 for 12k steps; LSIF lr 1e-4 for 16k). Reads
    `config.data.name` and `config.loss`, so set those first.
    """
    config.train.num_steps = 6_000
    config.train.batch_size = 512
    config.optim.decay_steps = (4_000, 5_000)
    config.train.sample_every = 2_000
    config.flow.kappa = 0
    if config.data.name == "swissroll":
        config.flow.num_steps, config.flow.eta, config.optim.lr = 100, 0.2, 2e-4
        if config.loss == "lsif":  # C2ST 0.591 at η = 0.2, 0.554 at 0.1 (RESULTS.md)
            config.flow.eta = 0.1
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


def image_config(
    arg: str | None, data: dict, model: dict, **overrides
) -> ml_collections.ConfigDict:
    """An image config: the SPEC's image settings (LSIF-χ², DDP prior clamped to [-1, 1],
    ResNet, K = 100, κ = 20, η = 3, ν = 0.01, Adam 1e-4, batch 64, 100k steps, lr × 0.1 at
    80k and 90k, EMA 0.998) with the given `data` / `model` fields and dotted `overrides`
    (e.g. `**{"prior.form": "lowrank"}`), then the config argument (a pairing, `smoke`).

    `smoke` keeps the network's stages, strides, options and image size but with one block per
    stage and channels / 16, trains 6 steps of K = 3 on batch 8, fits a low-rank prior where D >
    4096, and (except for the embedded digits) swaps the data for `synthetic` images of the
    same size, so every image config runs end to end in seconds (plus compilation).
    """
    c = default_config()
    c.loss, c.divergence = "lsif", "chi2"
    c.prior.name, c.prior.clip = "ddp", True
    c.model.name = "resnet"
    c.flow.num_steps, c.flow.kappa, c.flow.eta, c.flow.nu = 100, 20, 3.0, 0.01
    c.optim.lr, c.optim.decay_steps = 1e-4, (80_000, 90_000)
    c.train.batch_size, c.train.num_steps = 64, 100_000
    c.train.checkpoint_every, c.train.sample_every = 5_000, 5_000
    c.sample.clip_output, c.sample.num_samples = True, 10_000
    c.eval.num_samples = 50_000
    c.eval.fid_lengths = (100, 110, 120, 130)  # paper Fig. 5
    # The paper guides class-conditional flows with a robust classifier: L2 PGD with ε = 1 on
    # images in [0, 1], i.e. ε = 2 in our [-1, 1] pixels.
    c.classifier.adv_eps = 2.0
    c.data.update(data)
    c.model.update(model)
    override(c, overrides)
    tokens = _tokens(arg)
    apply_args(c, ",".join(t for t in tokens if t != "smoke"))
    if "smoke" in tokens:
        _image_smoke(c)
    return c


def _image_smoke(c: ml_collections.ConfigDict) -> None:
    if c.model.name == "resnet":
        spec = ARCHS.get(c.model.arch, {})
        stem = c.model.stem if c.model.stem is not None else spec["stem"]
        stages = c.model.stages if c.model.stages is not None else spec["stages"]
        c.model.stem = max(stem // 16, 4)
        c.model.stages = tuple((max(ch // 16, 4), 1, s) for ch, _, s in stages)
    if c.data.name not in ("digits", "synthetic"):
        c.data.name, c.data.synthetic_count = "synthetic", 64
        c.data.channels = c.data.channels or 3
    c.prior.rank = 8
    if c.data.size * c.data.size * max(c.data.channels, 1) > 4096:  # a D×D fit takes minutes
        c.prior.form = "lowrank"
    c.train.batch_size, c.train.num_steps = 8, 6
    c.train.log_every, c.train.checkpoint_every, c.train.sample_every = 2, 3, 3
    c.flow.num_steps, c.flow.kappa = 3, 1
    c.optim.decay_steps = (4, 5)
    c.sample.num_samples, c.sample.grid_size = 16, 16
    c.eval.num_samples, c.eval.batch_size, c.eval.neighbour_bank = 16, 8, 64
    c.eval.feature_net, c.eval.fid_lengths = "random", (2, 3, 4)


def load_config(spec: str) -> ml_collections.ConfigDict:
    """The config of a config file, as `--config` reads it: "configs/digits.py[:arg]" (for
    notebooks and scripts)."""
    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise MissingFileError(f"Config file {path!r} does not exist (from {spec!r}).")
    module_spec = importlib.util.spec_from_file_location("fdrl_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def _tokens(arg: str | None) -> list[str]:
    return [t.strip().lower() for t in (arg or "").split(",") if t.strip()]


def split_arg(arg: str | None, own: tuple[str, ...]) -> tuple[str, set[str]]:
    """A config file's own argument tokens (e.g. cat2dog's `cifar`) apart from the shared ones:
    (the shared tokens, comma-joined for `apply_args`, and the set of own tokens present)."""
    tokens = _tokens(arg)
    return ",".join(t for t in tokens if t not in own), {t for t in tokens if t in own}


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
            raise ConfigError(
                f"Unknown config argument {token!r}; use 'smoke', 'spec' and/or a pairing "
                f"from {sorted(PAIRINGS)}, comma-separated (e.g. ':lr-kl,smoke')."
            )
    return config
