"""Conv and dense layers with the reference implementation's semantics (docs/networks.md).

The flow follows ∇ₓ of the estimator, so layer details that look cosmetic change training:
- padding: a k×k conv pads (k − 1)/2 pixels on every side, as PyTorch's `padding=1` does for
  3×3. Flax's "SAME" pads (0, 1) at stride 2, which would sample the strided 3×3 branch one
  pixel away from the 1×1 shortcut in every downsampling block;
- initialisation (`param_init`): "torch" (the estimators' default) is PyTorch's
  default for Conv2d and Linear: weights U(±1/√fan_in) (kaiming-uniform, a = √5) and biases
  U(±1/√fan_in), fan_in = in_channels·kh·kw. "flax" is Flax's default (lecun-normal weights,
  zero biases): √3× larger weights per layer, which compounds over a deep net without
  normalisation (40–103× larger input gradients at initialisation on the image ResNets).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from fdrl_jax.errors import ConfigError
from fdrl_jax.models.conv_vjp import CONV_GRADS, conv_general_dilated

PARAM_INITS = ("torch", "flax")

# U(±√(3·scale/fan_in)) with scale 1/3: U(±1/√fan_in).
torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
    """PyTorch's default bias initialiser for a layer with `fan_in` inputs: U(±1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _init_kwargs(param_init: str, fan_in: int, use_bias: bool) -> dict:
    if param_init == "flax":
        return {}
    if param_init != "torch":
        raise ConfigError(
            f"Unknown param_init {param_init!r}; choose one of {list(PARAM_INITS)} "
            "(config field `model.param_init`)."
        )
    kwargs = {"kernel_init": torch_kernel_init}
    if use_bias:
        kwargs["bias_init"] = torch_bias_init(fan_in)
    return kwargs


def _shifted(init, offset: float):
    def shifted(key, shape, dtype=jnp.float32):
        return init(key, shape, dtype) + jnp.asarray(offset, dtype)

    return shifted


def conv(
    features: int,
    kernel: int,
    in_features: int,
    stride: int = 1,
    *,
    use_bias: bool = False,
    param_init: str = "torch",
    conv_grad: str = "auto",
    name: str | None = None,
) -> nn.Conv:
    """A k×k conv padded (k − 1)/2 on every side (PyTorch `padding=k//2` for odd k).

    `conv_grad` "auto" emits the input gradient in the form XLA:CPU runs fast inside the
    flow's loop (`conv_vjp`); "xla" keeps JAX's rule (and forward-mode differentiation)."""
    if conv_grad not in CONV_GRADS:
        raise ConfigError(
            f"Unknown conv_grad {conv_grad!r}; choose one of {list(CONV_GRADS)} "
            "(config field `model.conv_grad`)."
        )
    p = (kernel - 1) // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        (stride, stride),
        padding=((p, p), (p, p)),
        use_bias=use_bias,
        name=name,
        conv_general_dilated=conv_general_dilated if conv_grad == "auto" else None,
        **_init_kwargs(param_init, in_features * kernel * kernel, use_bias),
    )


def dense(
    features: int,
    in_features: int,
    *,
    param_init: str = "torch",
    bias_offset: float = 0.0,
    name: str | None = None,
) -> nn.Dense:
    """A dense layer with a bias (PyTorch `nn.Linear`); `bias_offset` is added to the bias
    as initialised (an LSIF estimator's output layer starts at r ≈ 1 with
    `model.unit_ratio_start`)."""
    kwargs = _init_kwargs(param_init, in_features, True)
    if bias_offset:
        base = kwargs.get("bias_init", nn.initializers.zeros_init())
        kwargs["bias_init"] = _shifted(base, bias_offset)
    return nn.Dense(features, name=name, **kwargs)


def apply(layer: nn.Module, x, spectral_norm: bool, update_stats: bool):
    """Call `layer` (created in the caller's compact scope), spectrally normalised if asked.

    Spectral norm keeps the layer's params where they are (`<name>/kernel`) and its
    power-iteration state in `batch_stats`. Every call runs one iteration from the stored
    vector; `update_stats=True` (once per training step) stores the result, False does not,
    so every call with the same state normalises the weights identically. A flow applies
    them once instead (`spectral.apply_spectral_norms`) and calls the layers unnormalised."""
    if spectral_norm:
        return nn.SpectralNorm(layer)(x, update_stats=update_stats)
    return layer(x)
