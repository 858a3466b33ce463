"""The FDRL config: every field a training run reads, its default and its rule, side by side.

Defaults are the paper's 2D toy settings (20k steps, batch 1024, K = 200, η = 1, lr 5e-5 × 0.1
at 5k / 10k / 15k, ...) with the images' κ = 20; the image recipe (`presets.image_config`)
and the files in `configs/` change some of them, each file showing the values it sets. The
sections only the other modes read are in `mode_sections.py`.
"""

from __future__ import annotations

import ml_collections

from fdrl_jax import data, divergences, models, priors
from fdrl_jax.configlib import mode_sections
from fdrl_jax.configlib.fields import (
    Field,
    boolean,
    build,
    check,
    int_tuple,
    integer,
    number,
    one_of,
    optional,
    registered,
    string,
)
from fdrl_jax.data.streaming import PIPELINES
from fdrl_jax.errors import ConfigError
from fdrl_jax.evaluation.features import FEATURE_NETS
from fdrl_jax.models import ARCHS

_SEED = integer(0, 0, 2**31 - 1)
_POSITIVE = (lambda v: v > 0, "> 0")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")


def data_fields(name: str, names=data.DATASETS, kind: str = "dataset") -> dict:
    """A data section: `data`, and `prior.source` (the dataset prior's source domain)."""
    return {
        # 2D: swissroll | 8gaussians | 25gaussians | chasm | points (a .npy/.npz of (N, D));
        # images: digits | npz | folder | tfds | synthetic (see fdrl_jax/data/images.py)
        "name": registered(name, names, kind),
        "path": string("", "a file or folder path"),  # points / npz: a file; folder: a directory
        "key": optional(None, lambda v: isinstance(v, str), "an array name", str),  # in a .npz
        # npz (`{split}_jpeg`, `{split}_images`) and tfds
        "split": Field("train", lambda v: isinstance(v, str) and v != "", "a split, e.g. 'train'"),
        "tfds_name": string("", "a TFDS name"),  # e.g. cifar10, celeb_a, lsun/church_outdoor
        # TFDS's data_dir, where `tfds build` prepared it ("": $TFDS_DATA_DIR or
        # ~/tensorflow_datasets); training never downloads
        "tfds_data_dir": string("", "a directory path"),
        # Image preprocessing as the reference's torchvision transforms, in this order (0 =
        # skip): center crop, resize (bilinear, antialiased) the shorter side to `resize` (or,
        # with keep_aspect = False, both sides), center crop to `size`. CelebA: 140 / 64 / 64;
        # LSUN Church: 0 / 128 (both sides) / 128; cat2dog: 0 / 84 / 64.
        "crop_first": integer(0, 0, 65_536),
        "resize": integer(0, 0, 65_536),
        "keep_aspect": boolean(True),
        "size": integer(0, 0, 65_536),
        # 0: as the data has them; 1 or 3: converted to that many (the log says so)
        "channels": Field(0, lambda v: v in (0, 1, 3) and type(v) is int, "0, 1 or 3"),
        "flip": boolean(True),  # random horizontal flips of training batches
        "dequant_std": number(0.03, *_NON_NEGATIVE),  # Gaussian dequantisation noise (training)
        "skip_bad_files": boolean(False),  # folder: skip (and count) unreadable files
        "synthetic_count": integer(256, 2, 10**7),  # synthetic: number of images
        # keep only images with these labels (e.g. (3,) for CIFAR-10 cats); () = all
        "classes": int_tuple((), 0, "a tuple of class labels >= 0, e.g. (3, 5)"),
        # How training images reach the devices (data/streaming.py): "device" keeps the uint8
        # set on every device; "stream" keeps it on the host and sends each batch, `prefetch`
        # batches ahead; "auto" streams a set larger than `device_memory_fraction` of one
        # device's memory (a CPU reports none: an assumed 8 GiB). Same batches either way.
        # (prior.source, a dataset prior, is always kept on the device.)
        "pipeline": one_of("auto", PIPELINES),
        "device_memory_fraction": number(0.25, lambda v: 0 < v <= 1, "in (0, 1]"),
        "prefetch": integer(2, 1, 1024),
    }


def _stages_ok(v) -> bool:
    return (
        isinstance(v, tuple | list)
        and len(v) > 0
        and all(
            isinstance(t, tuple | list)
            and len(t) == 3
            and all(type(i) is int and i >= 1 for i in t)
            for t in v
        )
    )


SCHEMA = {
    "seed": _SEED,
    "loss": registered("lsif", divergences.LOSSES, "loss"),  # Bregman loss: lsif | lr | kliep
    "divergence": registered("chi2", divergences.FPRIMES, "divergence"),  # chi2 | kl | js | logd
    # DGflow-style stale estimator (paper Sec. 3.1): train r on prior vs data without flowing;
    # sampling still flows K + κ steps with it.
    "stale_estimator": boolean(False),
    "data": data_fields("swissroll"),
    "prior": {
        "name": registered("gaussian", priors.PRIORS, "prior"),  # gaussian|uniform|ddp|dataset
        "mean": number(0.0),
        "std": number(1.0, *_POSITIVE),
        "low": number(-1.0),
        "high": number(1.0),
        "jitter": number(1e-4, *_NON_NEGATIVE),
        "fit_samples": integer(50_000, 2, 10**7),  # points drawn from an infinite source (ddp)
        "clip": boolean(False),  # clamp the prior draw to [-1, 1] (images)
        # ddp: "full" (Cholesky of Σ, D×D memory) or "lowrank" (top `rank` directions + diag)
        "form": one_of("full", ("full", "lowrank")),
        "rank": integer(256, 1, 65_536),
        # prior.name = "dataset" (unpaired translation, paper Sec. 6.5): source-domain images,
        # read and preprocessed like a data section, drawn with its flips and noise; they must
        # have the data's shape.
        "source": data_fields("folder", data.IMAGE_SOURCES, "image source"),
    },
    "model": {
        "name": registered("mlp", models.MODELS, "model"),  # mlp | resnet
        "hidden": integer(64, 1, 65_536),  # mlp
        "num_hidden_layers": integer(3, 0, 64),  # mlp
        # resnet: a network of the paper's Table 3 (models/resnet.py ARCHS) ... or its parts
        "arch": string("cifar10", "a ResNet name from models.ARCHS, or ''"),
        "stem": optional(None, lambda v: type(v) is int and v >= 1, "a channel count >= 1", int),
        "stages": optional(
            None, _stages_ok, "((channels, blocks, stride), ...) with positive integers", tuple
        ),
        "attention_after": optional(None, lambda v: type(v) is int and v >= 0, ">= 0", int),
        "spectral_norm": optional(None, lambda v: isinstance(v, bool), "True or False", bool),
        # Initialisation of every conv / dense layer: "torch" (PyTorch's defaults, as the
        # reference: U(±1/√fan_in) weights and biases) or "flax" (lecun-normal, zero biases).
        "param_init": one_of("torch", models.PARAM_INITS),
        # How the convs' input gradients are emitted (models/conv_vjp.py): "auto" in the form
        # XLA:CPU runs on its fast path inside the flow's loop (same values; no forward-mode
        # derivative), "xla" JAX's own rule. Only the CPU program differs.
        "conv_grad": one_of("auto", models.CONV_GRADS),
        # Start an estimator that outputs r itself (LSIF) at r ≈ 1, the ratio where q = p, by
        # adding 1 to its output layer's initial bias; an estimator of log r (LR) starts at
        # log r ≈ 0 already and is unchanged. Off: the paper's (and the reference's) r ≈ 0.
        "unit_ratio_start": boolean(False),
    },
    "flow": {
        "num_steps": integer(200, 0, 10**6),  # K, at training time
        "kappa": integer(20, 0, 10**6),  # extra steps at sampling time (K + κ)
        "eta": number(1.0, *_POSITIVE),
        "nu": number(0.01, *_NON_NEGATIVE),
        # Divide η by f''(1) of the divergence (χ² 2, KL 1, JS and logD 1/2): every pairing
        # then takes the KL flow's steps where the ratio is near 1 (flows.step_size). Off:
        # the paper's flow, η as given.
        "normalise_eta": boolean(False),
    },
    "optim": {  # Adam, lr × decay_factor at each of decay_steps
        "lr": number(5e-5, *_POSITIVE),
        "b1": number(0.9, lambda v: 0 <= v < 1, "in [0, 1)"),
        "b2": number(0.999, lambda v: 0 <= v < 1, "in [0, 1)"),
        "decay_steps": int_tuple((5_000, 10_000, 15_000), 0, "a tuple of steps, e.g. (5000,)"),
        "decay_factor": number(0.1, lambda v: 0 < v <= 1, "in (0, 1]"),
    },
    "train": {
        "batch_size": integer(1024, 1, 10**7),
        "num_steps": integer(20_000, 0, 10**9),
        "ema_decay": number(0.998, lambda v: 0 <= v < 1, "in [0, 1)"),
        "log_every": integer(100, 1),
        "checkpoint_every": integer(1_000, 1),
        "sample_every": integer(5_000, 1),
        "max_checkpoints": integer(3, 1, 10**4),
        # Divergence guard: a step with a non-finite loss/gradient, or a mean |net output|
        # above this bound, is not applied; then "stop" (with a message) or "rollback" to the
        # last checkpoint with the learning rate × rollback_lr_factor (max_rollbacks times).
        "max_abs_output": Field(
            1e8,
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v > 0,
            "a number > 0 (inf disables the bound)",
        ),
        "on_divergence": one_of("stop", ("stop", "rollback")),
        "rollback_lr_factor": number(0.5, lambda v: 0 < v < 1, "in (0, 1)"),
        "max_rollbacks": integer(3, 0, 100),
        # Compute precision of the estimator's passes (flow and loss); params, optimiser
        # state, EMA and the flowed particles stay float32.
        "precision": one_of("float32", ("float32", "bfloat16")),
        # A jax.profiler trace of profile_steps steps (0: none) into <workdir>/profile, after
        # the first profile_start steps of the run (the first step compiles): run/profiling.py.
        "profile_steps": integer(0, 0, 10**4),
        "profile_start": integer(2, 1, 10**9),
    },
    "sample": {
        "num_samples": integer(2_000, 1, 10**8),
        "clip_output": boolean(False),  # clamp final samples to [-1, 1] (images)
        "seed": integer(1, 0, 2**31 - 1),
        "grid_size": integer(64, 1, 10_000),  # images in the training-time sample grids
        "batch_size": integer(5_000, 1, 10**7),  # samples drawn per call, --mode=sample / eval
    },
    "eval": {
        "num_samples": integer(10_000, 2, 10**7),  # 2k is too noisy for the energy distance
        "num_projections": integer(512, 1, 10**5),  # sliced Wasserstein directions
        # Classifier two-sample test (vector data): a k-NN classifier, k-fold cross-validated,
        # on this many model samples against as many data points (and prior, and data itself).
        "c2st_samples": integer(5_000, 10, 10**7),
        "c2st_neighbors": integer(15, 1, 10**4),
        "c2st_folds": integer(5, 2, 100),
        "seed": integer(2, 0, 2**31 - 1),
        # Images: FID of num_samples samples vs `fid_stats` (pytorch-fid .npz) or the training
        # data, with the feature network `feature_net`: `inception` (the TF-FID network,
        # weights at `inception_weights`; default: $FDRL_FID_WEIGHTS or .cache/fid-helper/...,
        # see evaluation/inception_weights.py), `torchvision` (the paper's: torchvision's
        # Inception-v3, weights at `torchvision_weights`; default: $FDRL_TORCHVISION_WEIGHTS or
        # torchvision's cache, see evaluation/torchvision_inception.py) or `random` (a
        # stand-in network).
        "fid": boolean(True),
        "feature_net": one_of("inception", FEATURE_NETS),
        "inception_weights": string("", "a path"),
        "torchvision_weights": string("", "a path"),
        "fid_stats": string("", "a path to a .npz with mu, sigma"),
        # The network that made `fid_stats` when the file does not name it (ours do): the
        # FDRL authors' <dataset>_stats.npz are torchvision's, pytorch-fid's are inception's.
        # Statistics of another network than feature_net are refused.
        "fid_stats_net": one_of("", ("", *FEATURE_NETS)),
        # training images in the reference statistics when fid_stats is empty (0: all)
        "reference_samples": integer(0, 0, 10**8),
        # extra total flow lengths scored from the same chains (paper Fig. 5)
        "fid_lengths": int_tuple((), 0, "a tuple of flow lengths, e.g. (100, 110, 120, 130)"),
        "batch_size": integer(1_000, 1, 10**6),  # samples per sampling + feature batch
        "figures": boolean(True),  # flow strips, interpolation, prior samples, neighbours
        "neighbour_bank": integer(10_000, 1, 10**7),  # training images searched for neighbours
    },
}


def default_config() -> ml_collections.ConfigDict:
    """Every field a run reads (the FDRL sections, then the other modes'), at its default."""
    return build({**SCHEMA, **mode_sections.SCHEMA})


def validate(config: ml_collections.ConfigDict) -> None:
    """Every field typed and in range, every name known, the pairing and network valid.

    Raises `ConfigError` (a ValueError) naming the field and what it must be.
    """
    check(config, {**SCHEMA, **mode_sections.SCHEMA})
    divergences.check_pairing(config.loss, config.divergence)
    m = config.model
    if (
        m.name == "resnet"
        and m.arch not in ARCHS
        and (m.arch or m.stem is None or m.stages is None)
    ):
        raise ConfigError(
            f"Unknown ResNet arch {m.arch!r} (config field `model.arch`); choose one of "
            f"{sorted(ARCHS)}, or set it to '' and give model.stem and model.stages."
        )
    if m.name == "resnet" and m.attention_after is not None:
        stages = m.stages if m.stages is not None else ARCHS.get(m.arch, {}).get("stages", ())
        if m.attention_after >= len(stages):
            raise ConfigError(
                f"Invalid config: `model.attention_after` = {m.attention_after} but the "
                f"network has {len(stages)} stages."
            )
    if config.data.name == "tfds" and not config.data.tfds_name:
        raise ConfigError("Invalid config: data.name = 'tfds' needs data.tfds_name (e.g. cifar10).")
    if config.flow.num_steps + config.flow.kappa < 1:
        raise ConfigError("Invalid config: `flow.num_steps` + `flow.kappa` must be >= 1.")
    if config.prior.low >= config.prior.high:
        raise ConfigError("Invalid config: `prior.low` must be < `prior.high`.")


def validate_for_data(config: ml_collections.ConfigDict, shape: tuple[int, ...]) -> None:
    """Checks that need the data's event shape (known once the data is loaded)."""
    if config.model.name == "resnet" and len(shape) != 3:
        raise ConfigError(
            "Invalid config: `model.name` = 'resnet' needs image data (N, H, W, C), and "
            f"dataset {config.data.name!r} holds vectors of shape {shape}; use model.name = 'mlp'."
        )
