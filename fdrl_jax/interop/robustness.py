"""A checkpoint of the robustness library (MadryLab/robustness) as our `RobustResNet`.

The library saves `{'model': AttackerModel.state_dict(), 'optimizer': ..., 'schedule': ...,
'epoch': ...}` (older files: 'state_dict' for 'model') with `torch.save(pickle_module=dill)`,
from a `DataParallel`, so every name starts with 'module.'. The AttackerModel holds the
classifier twice (`model.*` and the attacker's `attacker.model.*`, the same tensors) and the
input normalisation twice (`normalizer.new_mean/new_std`, `attacker.normalize.*`, shaped
(3, 1, 1)). Only `model.*` and `normalizer.*` are read.

Its published CIFAR-10 checkpoints (e.g. `cifar_l2_1_0.pt`) cannot be read with
`torch.load(weights_only=True)`: dill pickles functions and code objects with them (plain
pickle fails on them too, and so does dill across Python versions: robustness issues #22, #71,
#81). `torch_pickle.load` reads them without running any of that: tensors only, every other
object an inert record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import traverse_util

from fdrl_jax import robust_resnet
from fdrl_jax.errors import DataError, MissingFileError
from fdrl_jax.interop import torch_pickle

_BN_LEAVES = {
    "weight": ("params", "scale"),
    "bias": ("params", "bias"),
    "running_mean": ("batch_stats", "mean"),
    "running_var": ("batch_stats", "var"),
}
_SHORTCUT = {"0": "shortcut_conv", "1": "shortcut_bn"}


def classifier_state_dict(checkpoint: Any, source: str) -> tuple[dict, dict]:
    """(the classifier's state dict without prefixes, the normaliser's {'new_mean',
    'new_std'}) from a loaded checkpoint (or a bare AttackerModel state dict)."""
    if not isinstance(checkpoint, Mapping):
        raise DataError(f"{source} holds a {type(checkpoint).__name__}, not a checkpoint dict.")
    sd = checkpoint.get("model", checkpoint.get("state_dict", checkpoint))
    if not isinstance(sd, Mapping):
        raise DataError(f"{source}: its 'model' entry is a {type(sd).__name__}, not a state dict.")
    sd = {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, np.ndarray)}
    model = {k[len("model.") :]: v for k, v in sd.items() if k.startswith("model.")}
    norm = {k[len("normalizer.") :]: v for k, v in sd.items() if k.startswith("normalizer.")}
    if not model:
        raise DataError(
            f"{source} has no 'model.*' (or 'module.model.*') weights: not a checkpoint of the "
            f"robustness library? Its first keys: {sorted(sd)[:5]}"
        )
    return model, norm


def _flax_path(key: str) -> tuple[str, ...]:
    """'layer2.0.shortcut.1.running_var' -> ('batch_stats', 'layer2_0', 'shortcut_bn', 'var')."""
    parts = key.split(".")
    m = re.fullmatch(r"layer(\d+)", parts[0])
    block: tuple[str, ...] = ()
    if m and len(parts) > 2:
        block, parts = (f"layer{m[1]}_{parts[1]}",), parts[2:]
    if parts[0] == "shortcut" and len(parts) == 3 and parts[1] in _SHORTCUT:
        parts = [_SHORTCUT[parts[1]], parts[2]]
    if len(parts) != 2:
        raise DataError(f"unexpected key {key!r} in a robustness ResNet state dict")
    layer, leaf = parts
    if layer.startswith("conv") or layer == "shortcut_conv":
        if leaf != "weight":
            raise DataError(f"unexpected key {key!r} (the convs have no bias)")
        return ("params", *block, layer, "kernel")
    if layer == "linear":
        return ("params", "linear", {"weight": "kernel", "bias": "bias"}[leaf])
    if leaf not in _BN_LEAVES:
        raise DataError(f"unexpected key {key!r} in a robustness ResNet state dict")
    collection, name = _BN_LEAVES[leaf]
    return (collection, *block, layer, name)


def architecture(model: Mapping[str, np.ndarray], source: str) -> robust_resnet.RobustResNet:
    """The `RobustResNet` a classifier state dict describes (its block counts, widths, classes
    and linear input); only the library's Bottleneck ResNet-50 is accepted."""
    blocks: dict[int, int] = {}
    for key in model:
        if m := re.match(r"layer(\d+)\.(\d+)\.", key):
            blocks[int(m[1])] = max(blocks.get(int(m[1]), 0), int(m[2]) + 1)
    num_blocks = tuple(blocks[i] for i in sorted(blocks))
    if "layer1.0.conv3.weight" not in model:
        raise DataError(
            f"{source}: its blocks have no conv3; only the library's Bottleneck ResNet-50 "
            "(cifar_models.ResNet50, e.g. cifar_l2_1_0.pt) is supported."
        )
    if num_blocks != robust_resnet.NUM_BLOCKS:
        raise DataError(
            f"{source}: blocks per stage {num_blocks}; only the ResNet-50's "
            f"{robust_resnet.NUM_BLOCKS} is supported."
        )
    widths = tuple(int(model[f"layer{i + 1}.0.conv1.weight"].shape[0]) for i in range(4))
    num_classes, features = (int(n) for n in model["linear.weight"].shape)
    feat_scale, rest = divmod(features, robust_resnet.EXPANSION * widths[-1])
    if rest or feat_scale < 1:
        raise DataError(f"{source}: a linear layer of {features} inputs does not fit {widths}.")
    return robust_resnet.RobustResNet(num_classes, widths, num_blocks, feat_scale)


def convert_state_dict(
    model: Mapping[str, np.ndarray], normalizer: Mapping[str, np.ndarray], source: str
) -> tuple[robust_resnet.RobustResNet, dict]:
    """(net, Flax variables) of a classifier state dict and its normaliser's buffers."""
    net = architecture(model, source)
    flat = {}
    for key, value in model.items():
        if key.endswith("num_batches_tracked"):
            continue
        path = _flax_path(key)
        value = np.asarray(value, np.float32)
        if path[-1] == "kernel":
            value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
        flat[path] = value
    for ours, theirs in (("mean", "new_mean"), ("std", "new_std")):
        if theirs not in normalizer:
            raise DataError(f"{source} has no normalizer.{theirs}: its input statistics")
        flat[("normalizer", ours)] = np.asarray(normalizer[theirs], np.float32).reshape(-1)
    variables = traverse_util.unflatten_dict(flat)
    robust_resnet.check_variables(net, variables, source)
    return net, variables


def import_checkpoint(checkpoint: str | os.PathLike, out: str) -> str:
    """Convert the robustness checkpoint at `checkpoint` into the .npz `out` that
    `classifier.name = "robust_resnet50"` reads; returns the path written."""
    source = os.fspath(checkpoint)
    if not os.path.isfile(source):
        raise MissingFileError(
            f"No robustness checkpoint at {source!r}; download cifar_l2_1_0.pt (CIFAR-10, L2, "
            "ε = 1.0) from the links in the README of github.com/MadryLab/robustness."
        )
    model, norm = classifier_state_dict(torch_pickle.load(source), source)
    net, variables = convert_state_dict(model, norm, source)
    out = out if out.endswith(".npz") else f"{out}.npz"
    robust_resnet.save(out, net, variables)
    return out
