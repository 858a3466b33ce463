"""torchvision's ImageNet Inception-v3, the network of the FDRL paper's FIDs
(`eval.feature_net = torchvision`): its weights, read from torchvision's own checkpoint file
and never downloaded.

What the authors' FID code does (their `eval/inception.py` and `calculate_fid.py`, with
torchvision 0.12): `torchvision.models.inception_v3(pretrained=True)`, whose weights file is
`inception_v3_google-0cc3c7bd.pth`; the features are the 2048-d output of the final average
pool ("pool3"); images in [0, 1] (theirs: samples clamped to [-1, 1] and mapped back) are
resized to 299×299 by `F.interpolate(mode='bilinear', align_corners=False)` (no antialiasing),
then scaled by 2x − 1 and fed to the network's blocks directly, so its `transform_input` (the
ImageNet re-normalisation that `pretrained=True` switches on inside `forward`) is never
applied. Ours resizes the [-1, 1] images instead of the [0, 1] ones: bilinear weights sum to 1,
so the two orders agree to float rounding. The network is `inception.InceptionV3FID` with
`pools="torchvision"`; the statistics of the training images are those of all 50,000 CIFAR-10
training images in their `dataset_setup.py`.

The weights: the file torchvision caches as
`$TORCH_HOME/hub/checkpoints/inception_v3_google-0cc3c7bd.pth` (default
`~/.cache/torch/hub/checkpoints/`), or any copy of it, or a `.npz` converted from it once with
`python -m fdrl_jax.convert --from=torchvision FILE.pth OUT.npz` (no torch needed to read
either).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from fdrl_jax.errors import DataError, MissingFileError
from fdrl_jax.evaluation import inception_weights
from fdrl_jax.interop import torch_pickle

FEATURE_NET = "torchvision"  # its `eval.feature_net` name, and the tag of converted weights
CHECKPOINT = "inception_v3_google-0cc3c7bd.pth"
URL = f"https://download.pytorch.org/models/{CHECKPOINT}"
SHA256_PREFIX = "0cc3c7bd"  # torchvision names its files by their sha256's first 8 digits
WEIGHTS_ENV_VAR = "FDRL_TORCHVISION_WEIGHTS"
NUM_CLASSES = 1000  # ImageNet; pytorch-fid's TF-FID network has 1008


def default_path() -> Path:
    """Where torchvision caches the file: $TORCH_HOME/hub/checkpoints (~/.cache/torch)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints" / CHECKPOINT


def how_to_get() -> str:
    return (
        f"download {URL} (what torchvision's inception_v3(pretrained=True) loads) and set "
        f"eval.torchvision_weights (or ${WEIGHTS_ENV_VAR}) to it"
    )


def convert_state_dict(state_dict: dict[str, Any], source: str = "the state dict") -> dict:
    """Flax variables of `InceptionV3FID(pools="torchvision")` from torchvision's Inception-v3
    state dict (the classifier `fc.*` and `AuxLogits.*` are dropped)."""
    fc = state_dict.get("fc.weight")
    if fc is not None and np.shape(fc)[0] != NUM_CLASSES:
        raise DataError(
            f"{source} has a {np.shape(fc)[0]}-class classifier, not torchvision's ImageNet "
            f"{NUM_CLASSES}: pytorch-fid's TF-FID Inception is eval.feature_net = inception."
        )
    try:
        return inception_weights.convert_pytorch_fid_state_dict(state_dict)
    except ValueError as e:
        raise DataError(f"{source} is not torchvision's Inception-v3: {e}") from e


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Flax variables from torchvision's `.pth` (read without torch, running nothing in it).
    Logs a warning when the file is not the one torchvision publishes (FIDs would not be
    comparable with the paper's)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if not digest.startswith(SHA256_PREFIX):
        logging.warning(
            "%s is not torchvision's %s (sha256 %s…): its FIDs are not comparable with the "
            "paper's.",
            path,
            CHECKPOINT,
            digest[:8],
        )
    sd = torch_pickle.load(path)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise DataError(f"{path} holds a {type(sd).__name__}, not a state dict.")
    arrays = {k: v for k, v in sd.items() if isinstance(v, np.ndarray)}
    return convert_state_dict(arrays, path)


def convert_file(checkpoint: str | os.PathLike, out: str | os.PathLike) -> str:
    """torchvision's `.pth` as a float32 `.npz` tagged with its network; returns its path."""
    variables = read_checkpoint(checkpoint)
    return inception_weights.save_flax_weights(variables, out, feature_net=FEATURE_NET)


def resolve_weights(path: str | os.PathLike | None = None) -> dict:
    """The variables from `path`, else $FDRL_TORCHVISION_WEIGHTS, else torchvision's cache:
    its `.pth`, or a `.npz` that `convert_file` wrote. Never downloads."""
    path = os.fspath(path or os.environ.get(WEIGHTS_ENV_VAR) or default_path())
    if not os.path.isfile(path):
        raise MissingFileError(f"No torchvision Inception-v3 weights at {path!r}; {how_to_get()}.")
    if path.endswith(".npz"):
        return inception_weights.load_inception(path, feature_net=FEATURE_NET)
    return read_checkpoint(path)
