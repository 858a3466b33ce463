"""Fit the data-dependent prior at LSUN-Church size (D = 128·128·3 = 49,152) and sample it.

    python benchmarks/prior_scale.py [--n=10000] [--rank=512] [--form=lowrank]

Streams n synthetic 128² images (generated batch by batch, never all in memory) through
`priors.fit_gaussian`, then draws samples; reports wall times and the process's peak resident
memory. The full form at this D needs a 19 GB float64 Σ and is refused by design of the
config (church128 uses `lowrank`). Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import jax
import numpy as np

from fdrl_jax import priors
from fdrl_jax.data.images import synthetic_images, to_unit_range


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rank", type=int, default=512)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--form", default="lowrank")
    a = ap.parse_args()

    def batches():
        for i in range(0, a.n, a.batch):
            x = synthetic_images(min(a.batch, a.n - i), a.size, 3, seed=i)
            yield np.asarray(to_unit_range(x))

    t0 = time.time()
    prior = priors.to_device(priors.fit_gaussian(batches(), form=a.form, rank=a.rank, total=a.n))
    fit_s = time.time() - t0
    t0 = time.time()
    x = jax.block_until_ready(prior.sample(jax.random.PRNGKey(0), 64))
    sample_s = time.time() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        json.dumps(
            {
                "dim": int(np.prod(prior.shape)),
                "n": a.n,
                "form": a.form,
                "rank": a.rank,
                "fit_seconds": round(fit_s, 1),
                "sample_64_seconds": round(sample_s, 2),
                "sample_shape": list(x.shape),
                "peak_rss_gb": round(peak_gb, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
