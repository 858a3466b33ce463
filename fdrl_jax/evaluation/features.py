"""Feature functions for FID (`eval.feature_net`): the TF-FID Inception (`inception`, the
community's standard), torchvision's Inception-v3 (`torchvision`, the FDRL paper's), each with
its weights, or a small random stand-in for smoke runs (`random`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from fdrl_jax.evaluation import torchvision_inception
from fdrl_jax.evaluation.inception import InceptionV3FID, Variables
from fdrl_jax.evaluation.inception_weights import resolve_inception_weights

Array = jax.Array

# The feature networks by name; statistics and FIDs carry the name of the one that made them.
FEATURE_NETS = ("inception", torchvision_inception.FEATURE_NET, "random")


class RandomFeatures(nn.Module):
    """A fixed random conv net standing in for Inception (`eval.feature_net = random`): fast,
    for smoke runs and tests; its FIDs are not comparable with anyone's."""

    @nn.compact
    def __call__(self, x):
        for f in (16, 32):
            x = nn.leaky_relu(nn.Conv(f, (3, 3), strides=(2, 2))(x), 0.2)
        return jnp.mean(x, axis=(1, 2))


def build_feature_fn(eval_cfg, shape):
    """images ([-1, 1] floats) -> (B, D) features, by `eval.feature_net`."""
    if eval_cfg.feature_net == "random":
        net = RandomFeatures()
        variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))
        apply = jax.jit(net.apply)
        return lambda x: apply(variables, jnp.asarray(x, jnp.float32))
    if eval_cfg.feature_net == torchvision_inception.FEATURE_NET:
        variables = torchvision_inception.resolve_weights(eval_cfg.torchvision_weights or None)
        fn = make_inception_feature_fn(variables, pools="torchvision")
    else:
        fn = make_inception_feature_fn(weights_path=eval_cfg.inception_weights or None)
    if shape[-1] == 1:  # grey images: Inception reads RGB
        return lambda x: fn(jnp.repeat(jnp.asarray(x), 3, axis=-1))
    return fn


def make_inception_feature_fn(
    variables: Variables | None = None,
    weights_path: str | os.PathLike | None = None,
    dtype: Any = jnp.float32,
    pools: str = "tf",
) -> Callable[[Any], Array]:
    """Jitted images → (B, 2048) pool3 features, with weights from `resolve_inception_weights`
    (the TF-FID network), or given `variables` (`pools="torchvision"`: torchvision's).

    Float images are taken as [-1, 1]; uint8 images as [0, 255] and mapped to [-1, 1] on the
    device (4× less to transfer). The weights are an argument of the jitted function, not
    constants baked into the compiled program.
    """
    if variables is None:
        variables = resolve_inception_weights(weights_path)
    variables = jax.device_put(variables)
    model = InceptionV3FID(dtype=dtype, pools=pools)

    @jax.jit
    def apply(v: Variables, x: Array) -> Array:
        if x.dtype == jnp.uint8:
            x = x.astype(jnp.float32) / 127.5 - 1.0
        return model.apply(v, x)

    return lambda images: apply(variables, images)
