"""LSUN Church outdoor 128² (SPEC): resize both sides to 128 (the aspect ratio is not kept, as in
the reference), center crop 128; the church128 ResNet.

D = 49,152, where a full covariance alone is 9.7 GB, so the data-dependent prior uses the
low-rank + diagonal form (top 512 principal directions and the residual variance per pixel).
Data from TensorFlow Datasets (`lsun/church_outdoor`), or a folder / .npz of the images.
Arguments: a pairing and/or `smoke`.
"""

from fdrl_jax.configlib import image_config


def get_config(arg: str | None = None):
    return image_config(
        arg,
        data={
            "name": "tfds",
            "tfds_name": "lsun/church_outdoor",
            "resize": 128,
            "keep_aspect": False,
            "size": 128,
            "channels": 3,
        },
        model={"arch": "church128"},
        **{"prior.form": "lowrank", "prior.rank": 512},
    )
