"""The robustness library's CIFAR ResNet-50 in Flax: the adversarially trained classifier that
guides the paper's class-conditional CIFAR-10 flows (Sec. 6.4; `cifar_l2_1_0.pt`: L2 PGD,
ε = 1 on [0, 1] images).

The network is `robustness.cifar_models.resnet.ResNet50` behind the library's `AttackerModel`:
the input is clamped to [0, 1] and normalised with the dataset's mean and std inside the model
(`InputNormalize`), then a 3×3 stem (stride 1, no pooling), four stages of Bottleneck blocks
(3, 4, 6, 3; widths 64·(1, 2, 4, 8), ×4 at each block's output; a 1×1 conv + BatchNorm
shortcut where the shape changes), `F.avg_pool2d(·, 4)` and a linear layer. BatchNorm runs in
inference mode with the running statistics (eps 1e-5), as the reference calls the classifier
in `.eval()`. Our pixels are in [-1, 1]: the model maps them to [0, 1] first, as the
reference's `classifier((x + 1) / 2)`. The clamp passes gradients on [0, 1], ends included, as
`torch.clamp` does, and none outside: particles the flow pushes past the pixel range get no
push back from the classifier, as in the reference.

The weights are imported from the library's checkpoint once (`python -m fdrl_jax.convert
--from=robustness cifar_l2_1_0.pt OUT.npz`, `interop/robustness.py`); `load` reads that file
back, for `--mode=conditional` with `classifier.name = "robust_resnet50"`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from fdrl_jax.errors import DataError
from fdrl_jax.interop.npz import load_params, save_params
from fdrl_jax.models.conv_vjp import conv_general_dilated

Array = jax.Array
Variables = dict[str, Any]

NAME = "robust_resnet50"  # its `classifier.name`, and the tag of its converted file
NUM_BLOCKS = (3, 4, 6, 3)  # ResNet-50
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4  # Bottleneck
# The library's CIFAR statistics (robustness.datasets.CIFAR); converted checkpoints carry their
# own `normalizer` buffers, which replace these.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def clamp_unit(x: Array) -> Array:
    """x clamped to [0, 1] with torch.clamp's gradient: 1 on [0, 1] (ends included), else 0
    (jnp.clip would give ½ at the ends)."""
    return jnp.where(x < 0, 0.0, jnp.where(x > 1, 1.0, x))


def _conv(features: int, kernel: int, strides: int, precision: Any, name: str) -> nn.Conv:
    pad = kernel // 2  # torch's padding=1 for the 3×3 convs, 0 for the 1×1
    return nn.Conv(
        features,
        (kernel, kernel),
        (strides, strides),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        precision=precision,
        conv_general_dilated=conv_general_dilated,  # its input gradient runs inside the flow's loop
        name=name,
    )


def _bn(name: str) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=True, epsilon=1e-5, name=name)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride) → 1×1 (×4 channels), BatchNorm after each, + shortcut, ReLU."""

    planes: int
    strides: int = 1
    shortcut: bool = False  # a 1×1 conv + BatchNorm on the shortcut (the shape changes)
    precision: Any = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x: Array) -> Array:
        p, planes = self.precision, self.planes
        h = nn.relu(_bn("bn1")(_conv(planes, 1, 1, p, "conv1")(x)))
        h = nn.relu(_bn("bn2")(_conv(planes, 3, self.strides, p, "conv2")(h)))
        h = _bn("bn3")(_conv(EXPANSION * planes, 1, 1, p, "conv3")(h))
        if self.shortcut:
            x = _bn("shortcut_bn")(
                _conv(EXPANSION * planes, 1, self.strides, p, "shortcut_conv")(x)
            )
        return nn.relu(h + x)


class RobustResNet(nn.Module):
    """NHWC images in [-1, 1] → logits (B, num_classes). Variables: `params`, `batch_stats`
    (running statistics) and `normalizer` (`mean`, `std` of the [0, 1] pixels, per channel).

    `widths` are the stages' bottleneck widths (the library's `wm` multiplier scales them);
    `feat_scale` the positions left after the 4×4 average pool (1 for 32×32 images)."""

    num_classes: int = 10
    widths: Sequence[int] = WIDTHS
    num_blocks: Sequence[int] = NUM_BLOCKS
    feat_scale: int = 1
    precision: Any = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise DataError(f"The robust ResNet reads RGB images (B, H, W, 3); got {x.shape}.")
        mean = self.variable("normalizer", "mean", lambda: jnp.asarray(CIFAR_MEAN, jnp.float32))
        std = self.variable("normalizer", "std", lambda: jnp.asarray(CIFAR_STD, jnp.float32))
        h = (clamp_unit((x + 1.0) / 2.0) - mean.value) / std.value
        h = nn.relu(_bn("bn1")(_conv(self.widths[0], 3, 1, self.precision, "conv1")(h)))
        in_ch = self.widths[0]
        for i, (planes, blocks) in enumerate(zip(self.widths, self.num_blocks, strict=True)):
            for j in range(blocks):
                strides = 1 if i == 0 or j > 0 else 2
                h = Bottleneck(
                    planes,
                    strides,
                    shortcut=strides != 1 or in_ch != EXPANSION * planes,
                    precision=self.precision,
                    name=f"layer{i + 1}_{j}",
                )(h)
                in_ch = EXPANSION * planes
        h = nn.avg_pool(h, (4, 4), (4, 4))  # F.avg_pool2d(out, 4)
        h = jnp.transpose(h, (0, 3, 1, 2)).reshape(h.shape[0], -1)  # torch's (C, H, W) order
        expected = self.feat_scale * EXPANSION * self.widths[-1]
        if h.shape[-1] != expected:
            side = image_side(self.feat_scale)
            raise DataError(
                f"The robust ResNet was trained on {side}×{side} images; images of "
                f"{x.shape[1]}×{x.shape[2]} do not fit its linear layer."
            )
        return nn.Dense(self.num_classes, precision=self.precision, name="linear")(h)


def image_side(feat_scale: int) -> int:
    """The image side that leaves `feat_scale` positions after the 4×4 pool (32 for 1)."""
    return 32 * round(feat_scale**0.5)


@functools.cache
def _expected_shapes_cached(
    num_classes: int, widths: tuple, num_blocks: tuple, feat_scale: int
) -> tuple:
    net = RobustResNet(num_classes, widths, num_blocks, feat_scale)
    side = image_side(feat_scale)
    shapes = jax.eval_shape(
        net.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
    )
    return tuple((k, tuple(v.shape)) for k, v in traverse_util.flatten_dict(shapes).items())


def expected_shapes(net: RobustResNet) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Flat {('params', ..., 'kernel'): shape} of `net`, traced without allocating."""
    key = (net.num_classes, tuple(net.widths), tuple(net.num_blocks), net.feat_scale)
    return dict(_expected_shapes_cached(*key))


# ----------------------------------------------------------------------------------------------
# The converted file


def save(path: str, net: RobustResNet, variables: Variables) -> None:
    """`variables` of `net` as a flat .npz, tagged with NAME and the architecture."""
    meta = {
        "architecture": np.asarray(NAME),
        "num_classes": np.asarray(net.num_classes),
        "widths": np.asarray(net.widths),
        "num_blocks": np.asarray(net.num_blocks),
        "feat_scale": np.asarray(net.feat_scale),
    }
    save_params(path, {**jax.tree.map(np.asarray, variables), "meta": meta})


def load(path: str) -> tuple[RobustResNet, Variables]:
    """(net, variables) from a file `save` wrote; anything else is a clear error."""
    tree = load_params(path)
    meta = tree.pop("meta", {})
    if str(meta.get("architecture", "")) != NAME:
        raise DataError(
            f"{path} is not a converted robustness ResNet-50: make one with `python -m "
            "fdrl_jax.convert --from=robustness cifar_l2_1_0.pt OUT.npz` (or set "
            "classifier.name to the kind of classifier this file holds)."
        )
    net = RobustResNet(
        num_classes=int(meta["num_classes"]),
        widths=tuple(int(w) for w in meta["widths"]),
        num_blocks=tuple(int(b) for b in meta["num_blocks"]),
        feat_scale=int(meta["feat_scale"]),
    )
    variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)
    check_variables(net, variables, path)
    return net, variables


def check_variables(net: RobustResNet, variables: Variables, source: str) -> None:
    """Raises DataError unless `variables` have exactly the names and shapes of `net`'s."""
    expected = expected_shapes(net)
    flat = {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(variables).items()}
    missing = sorted("/".join(k) for k in expected.keys() - flat.keys())
    extra = sorted("/".join(k) for k in flat.keys() - expected.keys())
    bad = [f"{'/'.join(k)}: {flat[k]} != {v}" for k, v in expected.items() if flat.get(k, v) != v]
    if missing or extra or bad:
        raise DataError(
            f"{source}: the weights do not fit the robust ResNet: missing {missing[:3]} "
            f"({len(missing)} in all), unexpected {extra[:3]} ({len(extra)}), shapes {bad[:3]}."
        )
