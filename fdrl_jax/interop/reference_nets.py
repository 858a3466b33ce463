"""The estimators of `models/` in PyTorch, laid out as the reference implementation's state dict.

Written from the networks described in docs/networks.md, with the reference's module names: `conv1`,
`layer{i}.{j}.conv1 / conv2 / shortcut_conv` (stages from 1, blocks from 0),
`self_attn_module.{query,key,value,self_att}` and `.gamma`, `linear`; the MLP is `mlp.0 ...
mlp.8`. Spectral norm is `torch.nn.utils.spectral_norm` (`weight_orig`, `weight_u`,
`weight_v`). Inputs are NCHW. Used to check that our networks compute the same function, to
time a PyTorch training iteration, and to load runs of ours in PyTorch.

Needs torch (`pip install torch`); nothing else in the package imports this module.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fdrl_jax.models.resnet import ARCHS


def _maybe_sn(module: nn.Module, spectral_norm: bool) -> nn.Module:
    return nn.utils.spectral_norm(module) if spectral_norm else module


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, spectral_norm: bool = False):
        super().__init__()
        self.conv1 = _maybe_sn(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), spectral_norm)
        self.conv2 = _maybe_sn(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), spectral_norm)
        self.shortcut_conv = None
        if stride != 1 or cin != cout:
            conv = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
            self.shortcut_conv = _maybe_sn(conv, spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(_act(self.conv1(x)))
        return _act(h + (x if self.shortcut_conv is None else self.shortcut_conv(x)))


class SelfAttention(nn.Module):
    """SAGAN: key/query/value 1×1 C→C/8, self_att C/8→C (with biases), y = γ·o + x; γ is a
    scalar, and the convs are registered in the reference's order (its optimiser state is
    indexed by parameter order)."""

    def __init__(self, channels: int, spectral_norm: bool = False):
        super().__init__()
        inner = max(channels // 8, 1)
        for name, (cin, cout) in {
            "key": (channels, inner),
            "query": (channels, inner),
            "value": (channels, inner),
            "self_att": (inner, channels),
        }.items():
            setattr(self, name, _maybe_sn(nn.Conv2d(cin, cout, 1), spectral_norm))
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.query(x).flatten(2).permute(0, 2, 1)  # B, N, C'
        k = self.key(x).flatten(2)  # B, C', N
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # B, N (queries), N (keys)
        v = self.value(x).flatten(2)  # B, C', N
        o = torch.bmm(v, attn.permute(0, 2, 1)).view(b, -1, h, w)
        return self.gamma * self.self_att(o) + x


class ResNetEstimator(nn.Module):
    """NCHW images -> one scalar per image."""

    def __init__(
        self,
        in_channels: int,
        stem: int,
        stages: Sequence[Sequence[int]],
        attention_after: int | None = None,
        spectral_norm: bool = False,
    ):
        super().__init__()
        self.conv1 = _maybe_sn(nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False), spectral_norm)
        self.attention_after = attention_after
        c = stem
        for i, (features, blocks, stride) in enumerate(stages):
            layer = nn.Sequential(
                *(
                    BasicBlock(
                        c if j == 0 else features, features, stride if j == 0 else 1, spectral_norm
                    )
                    for j in range(blocks)
                )
            )
            setattr(self, f"layer{i + 1}", layer)
            c = features
            if attention_after == i:
                self.self_attn_module = SelfAttention(c, spectral_norm)
        self.num_stages = len(stages)
        self.linear = _maybe_sn(nn.Linear(c, 1), spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _act(self.conv1(x))
        for i in range(self.num_stages):
            h = getattr(self, f"layer{i + 1}")(h)
            if self.attention_after == i:
                h = self.self_attn_module(h)
        return self.linear(h.mean(dim=(2, 3)))[:, 0]


class MLP(nn.Module):
    """(B, D) (or anything, flattened) -> (B,): `mlp.0 ... mlp.8` with LeakyReLU(0.2)."""

    def __init__(
        self,
        in_features: int,
        hidden: int = 64,
        num_hidden_layers: int = 3,
        spectral_norm: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        sizes = [in_features] + [hidden] * (num_hidden_layers + 1)
        for a, b in itertools.pairwise(sizes):
            layers += [_maybe_sn(nn.Linear(a, b), spectral_norm), nn.LeakyReLU(0.2)]
        layers.append(_maybe_sn(nn.Linear(hidden, 1), spectral_norm))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.flatten(1))[:, 0]


def build_reference_net(model_cfg, shape: Sequence[int]) -> nn.Module:
    """The PyTorch net for a `model` config section and an event shape ((H, W, C) or (D,)),
    matching `fdrl_jax.models.build_model(model_cfg)`."""
    if model_cfg.name == "mlp":
        d = 1
        for s in shape:
            d *= int(s)
        return MLP(
            d,
            model_cfg.hidden,
            model_cfg.num_hidden_layers,
            bool(model_cfg.get("spectral_norm") or False),
        )
    if model_cfg.name != "resnet":
        raise ValueError(f"No reference network for model {model_cfg.name!r}.")
    spec = dict(ARCHS[model_cfg.arch]) if model_cfg.arch else {}
    for key in ("stem", "stages", "attention_after", "spectral_norm"):
        if model_cfg.get(key) is not None:
            spec[key] = model_cfg.get(key)
    return ResNetEstimator(
        int(shape[-1]),
        spec["stem"],
        spec["stages"],
        spec.get("attention_after"),
        bool(spec.get("spectral_norm", False)),
    )
