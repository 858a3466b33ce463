"""The reference implementation's config dict <-> ours: what to check when importing one of its
checkpoints, and the dict to write when exporting a run of ours to it.

Its config is a plain dict (a YAML file, e.g. configs/cifar10.yaml, plus command-line
overrides). Its `get_model` picks the net by `img_size` (32: the CIFAR-10 ResNet; 64: `model`
= resnet (CelebA) or resnetshallow (cat2dog); 128: LSUN Church), with `spectral_norm` and
`self_attn` (after the first stage at 32², the second otherwise); the toys use an MLP with
`in_dim`, `hidden_dim`, `n_hidden_layers`.
"""

from __future__ import annotations

import math

from fdrl_jax.flows import config_step_size
from fdrl_jax.models import ARCHS

LOSSES = {"LSIF": "lsif", "LR": "lr", "KL": "kliep"}
DIVERGENCES = {"Pearson": "chi2", "KL": "kl", "JS": "js", "logD": "logd"}
_LOSS_HINT = {
    "lsif": "the image configs' default pairing, LSIF-χ² (config argument `lsif-chi2`)",
    "lr": "a config argument `lr-kl`, `lr-js` or `lr-logd`",
    "kliep": "--config.loss=kliep --config.divergence=kl",
}
# (reference key, our field): settings whose difference only changes how the run continues
SETTINGS = (
    ("eta", "flow.eta"),
    ("noise_factor", "flow.nu"),
    ("n_flow_steps", "flow.num_steps"),
    ("ema_rate", "train.ema_decay"),
    ("learning_rate", "optim.lr"),
    ("scheduler_gamma", "optim.decay_factor"),
    ("scheduler_steps", "optim.decay_steps"),
    ("n_epochs", "train.num_steps"),
    ("train_batch_size", "train.batch_size"),
)
# (img_size, `model`, the arch of ours its get_model builds; `model` is read at 64² only)
_REFERENCE_ARCHS = (
    (32, "resnet", "cifar10"),
    (64, "resnet", "celeba64"),
    (64, "resnetshallow", "cat2dog"),
    (128, "resnet", "church128"),
)


def _reference_arch(size, model) -> str | None:
    for s, m, arch in _REFERENCE_ARCHS:
        if s == size and (m == model or size != 64):
            return arch
    return None


def _get(config, dotted: str):
    if dotted == "flow.eta":  # the η the flow takes (flow.normalise_eta divides it)
        return config_step_size(config)
    for part in dotted.split("."):
        config = config[part]
    return config


def _same(a, b) -> bool:
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return isinstance(a, list | tuple) and isinstance(b, list | tuple) and list(a) == list(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def our_net(model_cfg) -> dict:
    """Our estimator's structure: MLP widths, or the ResNet's stem, stages, attention, SN."""
    if model_cfg.name == "mlp":
        return {
            "name": "mlp",
            "hidden": model_cfg.hidden,
            "num_hidden_layers": model_cfg.num_hidden_layers,
            "spectral_norm": bool(model_cfg.spectral_norm),
        }
    spec = dict(ARCHS[model_cfg.arch]) if model_cfg.arch in ARCHS else {}
    for key in ("stem", "stages", "attention_after", "spectral_norm"):
        if model_cfg.get(key) is not None:
            spec[key] = model_cfg.get(key)
    return {
        "name": "resnet",
        "stem": spec.get("stem"),
        "stages": tuple(tuple(s) for s in spec.get("stages", ())),
        "attention_after": spec.get("attention_after"),
        "spectral_norm": bool(spec.get("spectral_norm", False)),
    }


def reference_net(ref: dict) -> dict | None:
    """The net the reference's config builds, in `our_net`'s terms (None if unknown)."""
    if "in_dim" in ref or "hidden_dim" in ref:
        return {
            "name": "mlp",
            "hidden": ref.get("hidden_dim"),
            "num_hidden_layers": ref.get("n_hidden_layers"),
            "spectral_norm": bool(ref.get("spectral_norm", False)),
        }
    size = ref.get("img_size")
    arch = _reference_arch(size, ref.get("model"))
    if arch is None:
        return None
    spec = ARCHS[arch]
    return {
        "name": "resnet",
        "stem": spec["stem"],
        "stages": tuple(tuple(s) for s in spec["stages"]),
        "attention_after": (0 if size == 32 else 1) if ref.get("self_attn") else None,
        "spectral_norm": bool(ref.get("spectral_norm", False)),
    }


def describe_net(net: dict | None) -> str:
    if net is None:
        return "an unknown net"
    if net["name"] == "mlp":
        return (
            f"an MLP ({net['num_hidden_layers']} hidden layers of {net['hidden']}, "
            f"spectral_norm={net['spectral_norm']})"
        )
    return (
        f"a ResNet (stem {net['stem']}, stages {net['stages']}, attention_after="
        f"{net['attention_after']}, spectral_norm={net['spectral_norm']})"
    )


def compare(ref: dict, config, shape: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """(errors, warnings) comparing a reference checkpoint's config with ours for data of
    `shape`. An error: the nets output different quantities (the loss: r for LSIF, log r for
    LR and KL). Warnings: every other setting that differs (the f-divergence, flow, EMA,
    optimiser, steps, net, image size)."""
    errors, warnings = [], []
    loss = LOSSES.get(ref.get("loss_function"))
    if loss is not None and loss != config.loss:
        errors.append(
            f"the checkpoint was trained with loss_function={ref['loss_function']!r} (our "
            f"loss {loss!r}: its net outputs {'r' if loss == 'lsif' else 'log r'}), this "
            f"config has loss={config.loss!r}; use {_LOSS_HINT[loss]}"
        )
    div = DIVERGENCES.get(ref.get("f_divergence"))
    if div is not None and div != config.divergence:
        warnings.append(
            f"divergence: {config.divergence!r} here, f_divergence={ref['f_divergence']!r} "
            f"({div!r}) in the checkpoint's config"
        )
    for key, field in SETTINGS:
        if key in ref and not _same(ref[key], _get(config, field)):
            warnings.append(f"{field}: {_get(config, field)!r} here, {key}={ref[key]!r} there")
    theirs, ours = reference_net(ref), our_net(config.model)
    if theirs is not None and theirs != ours:
        warnings.append(f"the net: {describe_net(ours)} here, {describe_net(theirs)} there")
    size = ref.get("img_size")
    if size and len(shape) == 3 and tuple(shape[:2]) != (size, size):
        warnings.append(f"image size: {shape[0]}×{shape[1]} here, img_size={size} there")
    return errors, warnings


def _reference_model_name(net: dict, shape: tuple[int, ...]) -> tuple[str | None, str | None]:
    """(the reference's `model` value, a warning) for our net at this image size."""
    size = shape[0] if len(shape) == 3 else None
    for key_size, name, arch in _REFERENCE_ARCHS:
        if key_size != size or shape[0] != shape[1]:
            continue
        spec = ARCHS[arch]
        same = (net["stem"], net["stages"]) == (
            spec["stem"],
            tuple(tuple(s) for s in spec["stages"]),
        )
        position = 0 if size == 32 else 1
        if same and net["attention_after"] in (None, position):
            return name, None
    return "resnet", (
        f"the reference's get_model builds another net for {'×'.join(map(str, shape))} images "
        f"than this one, {describe_net(net)}: its code will not load this checkpoint as it "
        "is (the state dict is in its layout all the same)"
    )


def to_reference(config, shape: tuple[int, ...], dataset: str) -> tuple[dict, list[str]]:
    """A reference-style config dict for a run of ours on data of `shape` (what its
    eval_ddp.py and train_*.py --ckpt read), and warnings for what it cannot express."""
    net, warnings = our_net(config.model), []
    losses = {v: k for k, v in LOSSES.items()}
    divergences = {v: k for k, v in DIVERGENCES.items()}
    ref = {
        "dataset": dataset,
        "loss_function": losses[config.loss],
        "f_divergence": divergences[config.divergence],
        "eta": float(config_step_size(config)),
        "noise_factor": float(config.flow.nu),
        "n_flow_steps": int(config.flow.num_steps),
        "ema": True,
        "ema_rate": float(config.train.ema_decay),
        "learning_rate": float(config.optim.lr),
        "scheduler_gamma": float(config.optim.decay_factor),
        "scheduler_steps": [int(s) for s in config.optim.decay_steps],
        "n_epochs": int(config.train.num_steps),
        "train_batch_size": int(config.train.batch_size),
        "test_batch_size": 64,
        "spectral_norm": net["spectral_norm"],
        "device": "cpu",
        "data_dir": "./data",  # where its create_dataset looks (its configs' default)
        "phase": "train",
        # where its scripts write logs and checkpoints when resuming (they do not create them)
        "log_dir": ".",
        "ckpt_dir": ".",
        "use_wandb": False,
        "wandb_notes": "exported from fdrl-jax",
        "wandb_id": None,
        "print_steps": int(config.train.log_every),
        "log_steps": int(config.train.sample_every),
        "save_steps": int(config.train.checkpoint_every),
    }
    if net["name"] == "mlp":
        ref.update(
            in_dim=int(math.prod(shape)),
            hidden_dim=int(net["hidden"]),
            n_hidden_layers=int(net["num_hidden_layers"]),
        )
        return ref, warnings
    name, problem = _reference_model_name(net, shape)
    if problem:
        warnings.append(problem)
    ref.update(
        model=name,
        img_size=int(shape[0]),
        n_channels=int(shape[2]),
        self_attn=net["attention_after"] is not None,
    )
    return ref, warnings
