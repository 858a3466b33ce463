"""The streaming input path: the uint8 image set stays on the host and each training batch is
gathered there and sent to the devices, for sets too large to keep on an accelerator.

The device path (`images.ImageData`) keeps the whole uint8 set on every device and draws
batches inside the jitted step; it is the fastest, but a set must fit in device memory next to
the model. `data.pipeline` chooses: "device", "stream", or
"auto" (the default), which streams when the set would take more than
`data.device_memory_fraction` of one device's memory.

Streamed batches are the device path's batches. The batch of step s is a pure function of
(seed, s): its indices are drawn on the host with the key the device path would use for step
s, its rows gathered from the host array (in RAM, or a memory-mapped .npy), and it is flipped,
scaled and dequantised inside the jitted step with that key's augmentation subkey
(`images.split_sample_key`, `images.augment`). So a run trains the same model on either path,
and a resumed or rolled-back run continues exactly where it stopped: nothing but the step
number is needed to restart the stream. A background thread prepares `data.prefetch` batches
ahead; in a multi-process run each process gathers only the rows of each global batch that
its own devices hold (`jax.make_array_from_callback`), so host reads and transfers are split
over the hosts.
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import struct

from fdrl_jax.data.images import (
    ImageData,
    augment,
    augmentation_args,
    load_image_arrays,
    split_sample_key,
    to_image_data,
)
from fdrl_jax.errors import ConfigError

Array = jax.Array

PIPELINES = ("auto", "device", "stream")
# Device memory assumed where the backend reports none (CPU, where "device" memory is the
# host's): with the default fraction 0.25, sets above 2 GiB are streamed there.
FALLBACK_DEVICE_BYTES = 8 * 2**30


def device_memory_bytes(device=None) -> int | None:
    """The memory one device may allocate (`bytes_limit` of `memory_stats()`), or None where
    the backend does not say (CPU)."""
    device = device if device is not None else jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except (AttributeError, NotImplementedError, RuntimeError):
        stats = None
    limit = int((stats or {}).get("bytes_limit", 0) or 0)
    return limit or None


def choose_pipeline(cfg, nbytes: int, device=None) -> str:
    """ "device" or "stream" for a uint8 set of `nbytes`, as `cfg.pipeline` says ("auto":
    stream when the set exceeds `cfg.device_memory_fraction` of one device's memory; the
    device path keeps a full copy on every device)."""
    mode = cfg.get("pipeline", "auto")
    if mode not in PIPELINES:
        raise ConfigError(f"data.pipeline must be one of {list(PIPELINES)}; got {mode!r}.")
    if mode != "auto":
        return mode
    reported = device_memory_bytes(device)
    limit = reported or FALLBACK_DEVICE_BYTES
    fraction = float(cfg.get("device_memory_fraction", 0.25))
    choice = "stream" if nbytes > fraction * limit else "device"
    logging.info(
        "data.pipeline = auto: the uint8 set takes %.2f GB, %.0f%% of %s%.1f GB is %.2f GB: %s",
        nbytes / 1e9,
        100 * fraction,
        "" if reported else "an assumed ",
        limit / 1e9,
        fraction * limit / 1e9,
        "streaming it from the host" if choice == "stream" else "keeping it on the device",
    )
    return choice


@dataclasses.dataclass(frozen=True)
class HostImageData:
    """A finite image set (uint8 NHWC, on the host; a np.memmap works) with the training
    augmentation (flips, dequantisation). The same interface as `images.ImageData`, but not a
    pytree: training draws from it through a `BatchStream`, and `sample` runs eagerly (outside
    jit)."""

    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int32; all -1 when the source has none
    num_classes: int = 0
    flip: bool = True
    dequant_std: float = 0.03

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def sample_with_labels(self, key: Array, n: int) -> tuple[Array, Array]:
        """What `ImageData.sample_with_labels` draws for `key` (eagerly: not inside jit)."""
        idx = np.asarray(_indices(key[None], n, len(self))[0])
        x = augment(
            jnp.asarray(self.images[idx]), split_sample_key(key)[1], self.flip, self.dequant_std
        )
        return x, jnp.asarray(self.labels[idx])

    def sample(self, key: Array, n: int) -> Array:
        return self.sample_with_labels(key, n)[0]

    def clean_batches(self, batch_size: int = 1000) -> Iterator[np.ndarray]:
        """The whole set in [-1, 1], no flips, no noise (what the data-dependent prior fits)."""
        for i in range(0, len(self), batch_size):
            yield np.asarray(self.images[i : i + batch_size], np.float32) / 127.5 - 1.0


def is_streamed(data) -> bool:
    return isinstance(data, HostImageData)


def load_training_images(cfg) -> ImageData | HostImageData:
    """The image dataset the data config names, for training: an `ImageData` kept on the
    device, or, when `cfg.pipeline` selects streaming (`choose_pipeline`), a `HostImageData`
    kept on the host whose batches a `BatchStream` sends to the devices."""
    x, y, num_classes = load_image_arrays(cfg)
    if choose_pipeline(cfg, x.nbytes) == "stream":
        return HostImageData(images=x, labels=y, num_classes=num_classes, **augmentation_args(cfg))
    return to_image_data(x, y, num_classes, cfg)


@struct.dataclass
class StreamedBatch:
    """One global training batch (uint8, on the devices) standing in for the data set inside
    the jitted step: `sample(key, n)` returns what `ImageData.sample(key, n)` would, given
    that the batch holds the rows that key draws."""

    images: Array  # (n, H, W, C) uint8, sharded over the devices
    flip: bool = struct.field(pytree_node=False, default=True)
    dequant_std: float = struct.field(pytree_node=False, default=0.03)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def sample(self, key: Array, n: int) -> Array:
        if n != self.images.shape[0]:
            raise ValueError(f"A streamed batch holds {self.images.shape[0]} images, not {n}.")
        return augment(self.images, split_sample_key(key)[1], self.flip, self.dequant_std)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _indices(keys: Array, n: int, num_items: int) -> Array:
    """(S, n) batch indices for the step keys `keys` (S, 2), as `ImageData` draws them."""
    return jax.vmap(lambda k: jax.random.randint(split_sample_key(k)[0], (n,), 0, num_items))(keys)


@functools.partial(jax.jit, static_argnums=2)
def _step_keys(data_key: Array, first_step, count: int) -> Array:
    steps = first_step + jnp.arange(count, dtype=jnp.int32)
    return jax.vmap(lambda s: jax.random.fold_in(data_key, s))(steps)


def _host_device():
    try:
        return jax.local_devices(backend="cpu")[0]
    except RuntimeError:  # no CPU backend (JAX_PLATFORMS without cpu): the index draw is tiny
        return jax.local_devices()[0]


class BatchStream:
    """The training batches of a `HostImageData`, by step, prefetched by a background thread.

    `get(s)` returns the batch of step s (s = the state's step count before the update, whose
    data key is `fold_in(data_key, s)`, as in `trainer.make_train_step`; `trainer.batches`
    builds it). Asking for any step other than the next one (a resume, a rollback) restarts
    the prefetcher there.
    """

    def __init__(
        self,
        data: HostImageData,
        data_key: Array,
        batch_size: int,
        sharding: jax.sharding.Sharding | None = None,
        prefetch: int = 2,
        chunk: int = 16,
    ):
        self.data, self.batch_size, self.prefetch, self.chunk = data, batch_size, prefetch, chunk
        self.sharding = sharding
        self._host = _host_device()
        self._key = jax.device_put(data_key, self._host)
        self._thread: threading.Thread | None = None
        self._next: int | None = None

    # -- the batch of a step, synchronously (what the thread runs)

    def indices(self, first_step: int, count: int) -> np.ndarray:
        """(count, batch) indices of steps first_step, first_step + 1, ..."""
        keys = _step_keys(self._key, first_step, count)
        return np.asarray(_indices(keys, self.batch_size, len(self.data)))

    def make_batch(self, idx: np.ndarray) -> StreamedBatch:
        """The global batch of rows `idx`, each process reading only its devices' rows."""
        images = self.data.images
        shape = (len(idx), *images.shape[1:])
        if self.sharding is None:
            x = jax.device_put(np.asarray(images[idx]))
        else:
            x = jax.make_array_from_callback(
                shape, self.sharding, lambda i: np.asarray(images[idx[i[0]]])
            )
        return StreamedBatch(images=x, flip=self.data.flip, dequant_std=self.data.dequant_std)

    # -- prefetching

    def get(self, step: int) -> StreamedBatch:
        if step != self._next:
            self._start(step)
        item_step, item = self._queue.get()
        if item_step is None:  # the producer failed: raise its error here
            self._thread = None
            self._next = None
            raise item
        assert item_step == step, (item_step, step)
        self._next = step + 1
        return item

    def _start(self, step: int) -> None:
        self.close()
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(self.prefetch, 1))
        self._thread = threading.Thread(
            target=self._produce, args=(step, self._stop, self._queue), daemon=True
        )
        self._thread.start()
        self._next = step

    def _produce(self, step: int, stop: threading.Event, out: queue.Queue) -> None:
        try:
            while not stop.is_set():
                for idx in self.indices(step, self.chunk):
                    if stop.is_set():
                        return
                    item = (step, self.make_batch(idx))
                    while not stop.is_set():
                        try:
                            out.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    step += 1
        except BaseException as e:  # handed to the consumer, which raises it
            while not stop.is_set():
                try:
                    out.put((None, e), timeout=0.1)
                    return
                except queue.Full:
                    continue

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self._next = None

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
