"""What config files build on: the config argument (`parse_arg`), the paper's image recipe
(`image_config`), the 2D toys' CPU settings (`TOY_CPU`), the seconds-long variant every
config offers (`smoke`), and loading a config file (`load_config`).

A config file reads its argument first, then sets its values with plain `if`s:

    def get_config(arg=None):
        arg = configlib.parse_arg(arg, pairing=configlib.choice("lsif-chi2", PAIRINGS),
                                  smoke=False, paper=False)
        c = configlib.default_config()
        ...
        if arg.smoke:
            configlib.smoke(c)
        return c

so a new argument is one keyword (a flag `name=False`, or `name=choice(default, options)`)
and one `if` in the files that take it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import ml_collections

from fdrl_jax.configlib.defaults import default_config
from fdrl_jax.data import IMAGE_SOURCES
from fdrl_jax.errors import ConfigError, MissingFileError
from fdrl_jax.models import ARCHS

# The paper's (loss, f-divergence) pairings, by the names `--config=x.py:lr-js` selects.
PAIRINGS = {
    "lsif-chi2": ("lsif", "chi2"),
    "lr-kl": ("lr", "kl"),
    "lr-js": ("lr", "js"),
    "lr-logd": ("lr", "logd"),
}


# The 2D CPU settings: one table for every toy, every point cloud (`data.name=points`) and
# every pairing, so a new shape trains with what the shipped toys get. Minutes on a 2-core CPU
# instead of the paper's half hour; measured in benchmarks/RESULTS.md ("2D toys: every
# pairing on seven shapes"). η is the KL flow's: `flow.normalise_eta` divides it by f''(1)
# of the divergence (χ² 0.1, KL 0.2, JS and logD 0.4), the same steps for every pairing
# near q = p; an LSIF net starts at r ≈ 1 (`model.unit_ratio_start`) as an LR net starts
# at log r ≈ 0. The paper's η = 1 overshoots the sharp 8 / 25-Gaussian modes, and ν = 0.02
# widened them.
TOY_CPU = {
    "train.num_steps": 12_000,
    "train.batch_size": 512,
    "train.sample_every": 2_000,
    "optim.lr": 2e-4,
    "optim.decay_steps": (8_000, 10_000),
    "flow.num_steps": 100,
    "flow.eta": 0.2,
    "flow.nu": 0.01,
    "flow.normalise_eta": True,
    "model.unit_ratio_start": True,
}


@dataclasses.dataclass(frozen=True)
class Choice:
    """A config argument that takes one of `options`; a bare option selects it (`:lr-kl`)."""

    default: str
    options: tuple[str, ...]


def choice(default: str, options) -> Choice:
    return Choice(default, tuple(options))


def _convert(name: str, default, text: str):
    if isinstance(default, Choice):
        if text not in default.options:
            raise ConfigError(
                f"Config argument {name}={text!r}: choose one of {list(default.options)}."
            )
        return text
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ConfigError(f"Config argument {name}={text!r}: give True or False.")
        return text.lower() in ("true", "1")
    try:
        return type(default)(text)
    except ValueError:
        raise ConfigError(
            f"Config argument {name}={text!r}: give a {type(default).__name__}."
        ) from None


def _describe(spec: dict) -> str:
    words = []
    for name, default in spec.items():
        if isinstance(default, bool):
            words.append(name)
        elif isinstance(default, Choice):
            words.append(" | ".join(default.options))
        else:
            words.append(f"{name}=<{type(default).__name__}>")
    return ", ".join(words)


def parse_arg(arg: str | None, **spec) -> ml_collections.ConfigDict:
    """The config argument (what follows `:` in `--config=configs/x.py:ARG`) as a ConfigDict
    of the names in `spec`, each at its default unless the argument sets it.

    ARG is comma-separated: `name=value`; a flag's name alone (`smoke`, for a bool default);
    or an option of a `choice` alone (`lr-kl` for `pairing=choice("lsif-chi2", PAIRINGS)`).
    Anything else is a `ConfigError` listing what this config takes.
    """
    values = {k: v.default if isinstance(v, Choice) else v for k, v in spec.items()}
    for token in (t.strip().lower() for t in (arg or "").split(",")):
        if not token:
            continue
        name, eq, text = (s.strip() for s in token.partition("="))
        if eq and name in spec:
            values[name] = _convert(name, spec[name], text)
        elif not eq and isinstance(spec.get(name), bool):
            values[name] = True
        elif not eq and (owner := _choice_of(spec, name)):
            values[owner] = name
        else:
            raise ConfigError(
                f"Unknown config argument {token!r}; this config takes {_describe(spec)}, "
                "comma-separated (e.g. ':lr-kl,smoke')."
            )
    return ml_collections.ConfigDict(values)


def _choice_of(spec: dict, option: str) -> str | None:
    return next((k for k, v in spec.items() if isinstance(v, Choice) and option in v.options), None)


def no_paper_settings(arg: ml_collections.ConfigDict, setting: str) -> None:
    """For a config the paper has no settings for (`setting`, e.g. "the 8×8 digits are"):
    its `paper` argument is a ConfigError that names the paper's image settings."""
    if arg.paper:
        raise ConfigError(
            f"Config argument `paper`: {setting} not in the paper, so there are no authors' "
            "settings to select; the paper's image settings are configs/cifar10.py:paper."
        )


def image_config() -> ml_collections.ConfigDict:
    """The paper's image recipe, what the image configs change: LSIF-χ², the data-dependent
    prior clamped to [-1, 1], a ResNet estimator, K = 100, κ = 20, η = 3, ν = 0.01, Adam 1e-4,
    batch 64, 100k steps with lr × 0.1 at 80k and 90k, EMA 0.998, samples clamped, FID of
    50k samples at total flow lengths 100-130 (Fig. 5), and a robust guide for conditional
    sampling (L2 PGD, ε = 1 on [0, 1] images, i.e. 2 on our [-1, 1] pixels)."""
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
    c.eval.fid_lengths = (100, 110, 120, 130)
    c.classifier.adv_eps = 2.0
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrink a config to a seconds-long run (tests, quick checks) that keeps its structure.

    Vector data: batch 128, 20 steps of K = 10 (κ = 2), small sample and eval counts. Images:
    the network keeps its stages, strides, options and image size with one block per stage
    and channels / 16; 6 steps of K = 3 (κ = 1) on batch 8 (a GAN: 20 steps, 16 samples); a
    low-rank prior where D > 4096;
    and data other than the embedded digits become `synthetic` images of the same size.
    """
    if c.data.name not in IMAGE_SOURCES:
        c.train.batch_size, c.train.num_steps = 128, 20
        c.train.log_every, c.train.checkpoint_every, c.train.sample_every = 5, 10, 10
        c.flow.num_steps, c.flow.kappa = 10, 2
        c.optim.decay_steps = (10, 15)
        c.prior.fit_samples = 2_000
        c.sample.num_samples, c.eval.num_samples, c.eval.num_projections = 256, 256, 64
        c.gan.num_steps, c.gan.num_samples = 50, 256
        return c
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
    c.gan.num_steps, c.gan.num_samples = 20, 16
    return c


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
