"""CIFAR-10 32² (SPEC): the cifar10 ResNet (spectral norm on), DDP prior, K = 100, η = 3.

Data from TensorFlow Datasets (`pip install -e .[tfds]`), or any uint8 .npz:
`--config.data.name=npz --config.data.path=cifar10-jpeg.npz` (the JPEG layout is decoded).
Arguments: a pairing (`lr-kl`, `lr-js`, `lr-logd`; default LSIF-χ²) and/or `smoke`.
"""

from fdrl_jax.configlib import image_config


def get_config(arg: str | None = None):
    return image_config(
        arg,
        data={"name": "tfds", "tfds_name": "cifar10", "size": 32, "channels": 3},
        model={"arch": "cifar10"},
    )
