"""Throughput of the streaming input path (fdrl_jax/data/streaming.py) in images/s.

For CIFAR-sized (32×32×3) and 128×128×3 uint8 sets, held in RAM or memory-mapped from a .npy
on disk, it times `BatchStream.get` (host index draw, row gather, transfer to the device,
prefetched by the background thread) and the same followed by the on-device augmentation the
training step applies (flip, [-1, 1], dequantisation noise), median over repeats. A GPU
training step of the image configs consumes one batch of 64 per ~0.1 s: ~640 images/s.

    python benchmarks/streaming.py                  # both sizes, RAM and .npy
    python benchmarks/streaming.py --smoke          # a few seconds, checks the script
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import jax
import numpy as np

from fdrl_jax.data import streaming

GPU_IMAGES_PER_SEC = 64 / 0.1


@jax.jit
def _augment(batch: streaming.StreamedBatch, key: jax.Array) -> jax.Array:
    return batch.sample(key, batch.images.shape[0])


def _time(stream: streaming.BatchStream, first: int, steps: int, augment: bool) -> float:
    """images/s over `steps` batches from step `first` (the stream is already warm)."""
    key = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    out = None
    for s in range(first, first + steps):
        batch = stream.get(s)
        out = _augment(batch, jax.random.fold_in(key, s)) if augment else batch.images
    jax.block_until_ready(out)
    return steps * stream.batch_size / (time.perf_counter() - t0)


def measure(images: np.ndarray, batch: int, steps: int, repeats: int, augment: bool) -> float:
    data = streaming.HostImageData(images=images, labels=np.full(len(images), -1, np.int32))
    with streaming.BatchStream(data, jax.random.PRNGKey(1), batch, prefetch=4) as stream:
        _time(stream, 0, 3, augment)  # compile and start the thread
        rates = [_time(stream, 3 + i * steps, steps, augment) for i in range(repeats)]
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="32,128")
    p.add_argument("--num_images", default="50000,10000", help="set size per image size")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    if a.smoke:
        a.num_images, a.steps, a.repeats = "500,100", 5, 2
    sizes = [int(s) for s in a.sizes.split(",")]
    counts = [int(n) for n in a.num_images.split(",")]
    print(f"device: {jax.devices()[0].device_kind}, batch {a.batch}, median of {a.repeats}")
    print("| images | set | source | stream (images/s) | + augment (images/s) | stream ÷ 640 |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for size, n in zip(sizes, counts, strict=True):
            x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
            path = os.path.join(tmp, f"x{size}.npy")
            np.save(path, x)
            for source, arr in (("RAM", x), (".npy mmap", np.load(path, mmap_mode="r"))):
                plain = measure(arr, a.batch, a.steps, a.repeats, augment=False)
                aug = measure(arr, a.batch, a.steps, a.repeats, augment=True)
                print(
                    f"| {size}×{size}×3 | {n} ({x.nbytes / 1e9:.2f} GB) | {source} | "
                    f"{plain:,.0f} | {aug:,.0f} | {plain / GPU_IMAGES_PER_SEC:,.0f}× |"
                )


if __name__ == "__main__":
    main()
