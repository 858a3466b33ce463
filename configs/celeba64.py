"""CelebA 64² (SPEC): center crop 140, resize to 64; the celeba64 ResNet; DDP prior (D = 12,288,
full covariance: 1.2 GB in float64 while fitting, stored in <workdir>/prior.npz).

Data from TensorFlow Datasets (`celeb_a`), or a folder / .npz of the aligned face images:
`--config.data.name=folder --config.data.path=img_align_celeba/`.
Arguments: a pairing and/or `smoke`.
"""

from fdrl_jax.configlib import image_config


def get_config(arg: str | None = None):
    return image_config(
        arg,
        data={
            "name": "tfds",
            "tfds_name": "celeb_a",
            "crop_first": 140,
            "resize": 64,
            "size": 64,
            "channels": 3,
        },
        model={"arch": "celeba64"},
    )
