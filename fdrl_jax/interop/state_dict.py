"""Our estimator variables <-> the reference implementation's PyTorch state dict (numpy only).

Names (see `models/resnet.py`): our `layer{i}_{j}` is the reference's `layer{i}.{j}`, our MLP's
`Dense_{k}` its `mlp.{2k}`, and every other module name is the same. Layouts: conv kernels
HWIO <-> OIHW, dense kernels (in, out) <-> (out, in); the attention's γ is a scalar on both
sides (the reference's `nn.Parameter(torch.tensor(0.0))`; a (1,) γ is accepted on import).
A spectrally normalised layer is `weight_orig` plus the power-iteration vectors `weight_u`
(output side, the vector flax stores as `u`) and `weight_v` (input side, recomputed from u on
export). Flax's SpectralNorm runs one power iteration from the stored u at every call, as
PyTorch's does in training mode (the reference never calls `.eval()`), so both normalise by
the same σ for the same u, converged or not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from flax import traverse_util

_LEAF = {"kernel": "weight", "bias": "bias", "gamma": "gamma"}


def torch_key(path: tuple[str, ...]) -> str:
    """The reference's state-dict name of one of our params (a flattened params path)."""
    parts = []
    for p in path[:-1]:
        if m := re.fullmatch(r"layer(\d+)_(\d+)", p):
            parts += [f"layer{m[1]}", m[2]]
        elif m := re.fullmatch(r"Dense_(\d+)", p):
            parts += ["mlp", str(2 * int(m[1]))]
        else:
            parts.append(p)
    if path[-1] not in _LEAF:
        raise ValueError(f"No reference name for parameter {'/'.join(path)}")
    return ".".join([*parts, _LEAF[path[-1]]])


def _to_torch(x: np.ndarray, leaf: str) -> np.ndarray:
    if leaf == "kernel":
        return np.transpose(x, (3, 2, 0, 1)) if x.ndim == 4 else x.T
    return x


def _from_torch(x: np.ndarray, leaf: str, shape: tuple[int, ...]) -> np.ndarray:
    if leaf == "kernel":
        x = np.transpose(x, (2, 3, 1, 0)) if x.ndim == 4 else x.T
    return x.reshape(shape) if leaf == "gamma" else x


def _spectral_norm_state(stats: Mapping) -> dict[tuple[str, ...], tuple[tuple, tuple]]:
    """kernel path -> (flat `u` key, flat `sigma` key) for every spectrally normalised layer."""
    out = {}
    for key in traverse_util.flatten_dict(dict(stats)):
        *parent, wrapper, name = key
        if name.endswith("/u"):
            base = name[: -len("/u")]
            kernel = (*parent, *base.split("/"))
            out[kernel] = (key, (*parent, wrapper, base + "/sigma"))
    return out


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def param_names(template: Mapping) -> dict[tuple[str, ...], str]:
    """Flat params path -> the reference's name of that parameter (`weight_orig` for a
    spectrally normalised kernel): the names its optimiser state is indexed by."""
    params = traverse_util.flatten_dict(dict(template["params"]))
    sn = _spectral_norm_state(dict(template.get("batch_stats", {}) or {}))
    out = {}
    for path in params:
        key = torch_key(path)
        out[path] = key[: -len(".weight")] + ".weight_orig" if path in sn else key
    return out


def to_torch_layout(x: np.ndarray, leaf: str) -> np.ndarray:
    """One of our params (or a params-shaped optimiser moment) in the reference's layout."""
    return _to_torch(np.asarray(x), leaf)


def from_torch_layout(x: np.ndarray, leaf: str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `to_torch_layout` for a param of our `shape`."""
    return _from_torch(np.asarray(x), leaf, tuple(shape))


def _power_sigma(w: np.ndarray, u: np.ndarray) -> np.float32:
    """σ after one power iteration from u (what flax's and PyTorch's training-mode spectral
    norms divide by): v = normalize(Wᵀu), σ = ‖W v‖."""
    mat = w.reshape(w.shape[0], -1)
    return np.float32(np.linalg.norm(mat @ _normalize(mat.T @ u)))


def to_state_dict(variables: Mapping) -> dict[str, np.ndarray]:
    """Our estimator's variables ({"params": ..., ["batch_stats": ...]}) as the reference's
    state dict (float32 numpy arrays)."""
    params = traverse_util.flatten_dict(dict(variables["params"]))
    stats = dict(variables.get("batch_stats", {}) or {})
    sn = _spectral_norm_state(stats)
    flat_stats = traverse_util.flatten_dict(stats) if stats else {}
    out = {}
    for path, value in params.items():
        value = np.asarray(value, np.float32)
        key = torch_key(path)
        w = _to_torch(value, path[-1])
        if path in sn:
            base = key[: -len(".weight")]
            u = np.asarray(flat_stats[sn[path][0]], np.float32).reshape(-1)
            out[base + ".weight_orig"] = w
            out[base + ".weight_u"] = u
            out[base + ".weight_v"] = _normalize(w.reshape(w.shape[0], -1).T @ u)
        else:
            out[key] = w
    return out


def to_state_dict_shapes(template: Mapping) -> dict[str, tuple[int, ...]]:
    """name -> shape of the reference's state dict for variables shaped like `template`."""
    params = traverse_util.flatten_dict(dict(template["params"]))
    sn = _spectral_norm_state(dict(template.get("batch_stats", {}) or {}))
    out = {}
    for path, value in params.items():
        shape = tuple(value.shape)
        key = torch_key(path)
        if path[-1] == "kernel":
            shape = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape[::-1]
        if path in sn:
            base = key[: -len(".weight")]
            out[base + ".weight_orig"] = shape
            out[base + ".weight_u"] = (shape[0],)
            out[base + ".weight_v"] = (int(np.prod(shape[1:])),)
        else:
            out[key] = shape
    return out


def from_state_dict(state_dict: Mapping[str, np.ndarray], template: Mapping) -> dict:
    """The reference's state dict as our variables, shaped like `template` (our model's
    variables or `jax.eval_shape` of its init). Raises ValueError naming the missing,
    unexpected or mis-shaped keys."""
    state = {k: np.asarray(v) for k, v in state_dict.items()}
    expected = to_state_dict_shapes(template)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k}: {tuple(state[k].shape)} (expected {expected[k]})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != expected[k] and not (expected[k] == () and state[k].size == 1)
    )
    if missing or unexpected or wrong:
        raise ValueError(
            "The state dict does not match this network"
            + (f"; missing keys {missing}" if missing else "")
            + (f"; unexpected keys {unexpected}" if unexpected else "")
            + (f"; wrong shapes {wrong}" if wrong else "")
            + f". Expected keys: {sorted(expected)}. Check the config's model section "
            "(arch, spectral_norm, channels) against the checkpoint's."
        )
    params = traverse_util.flatten_dict(dict(template["params"]))
    stats = dict(template.get("batch_stats", {}) or {})
    sn = _spectral_norm_state(stats)
    new_params, new_stats = {}, {}
    for path, value in params.items():
        key = torch_key(path)
        if path in sn:
            base = key[: -len(".weight")]
            w = state[base + ".weight_orig"].astype(np.float32)
            # weight_v is not needed: flax recomputes v from u at every call, as torch does
            # in training mode
            u = state[base + ".weight_u"].astype(np.float32)
            u_key, sigma_key = sn[path]
            new_stats[u_key] = u[None]
            new_stats[sigma_key] = _power_sigma(w, u)
        else:
            w = state[key].astype(np.float32)
        new_params[path] = _from_torch(w, path[-1], tuple(value.shape))
    out = {"params": traverse_util.unflatten_dict(new_params)}
    if stats:
        out["batch_stats"] = traverse_util.unflatten_dict(new_stats)
    return out
