"""Figures the drivers write (matplotlib, no display needed; PNG grids with Pillow), to a
local path or a bucket (through `run/files.py`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from fdrl_jax.data import to_uint8
from fdrl_jax.evaluation.figures import make_grid
from fdrl_jax.run import files


def _scatter(ax, x: np.ndarray, **kw) -> None:
    x = np.asarray(x).reshape(len(x), -1)
    ax.scatter(x[:, 0], x[:, 1] if x.shape[1] > 1 else np.zeros(len(x)), s=2, **kw)


def scatter_over_data(samples: np.ndarray, data: np.ndarray, path: str, title: str = "") -> None:
    """Samples (red) over data points (grey), first two coordinates."""
    fig, ax = plt.subplots(figsize=(5, 5))
    _scatter(ax, data, c="0.7", label="data")
    _scatter(ax, samples, c="tab:red", alpha=0.6, label="samples")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title)
    files.save_figure(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def panels(sets: Sequence[tuple[str, np.ndarray]], path: str) -> None:
    """One scatter panel per (title, points), sharing axes."""
    fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 4), sharex=True, sharey=True)
    for ax, (title, x) in zip(np.atleast_1d(axes), sets, strict=True):
        _scatter(ax, x, c="tab:blue", alpha=0.5)
        ax.set_title(title)
        ax.set_aspect("equal")
    files.save_figure(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def save_grid_png(grid: np.ndarray, path: str, min_width: int = 256) -> None:
    """A uint8 grid as a PNG, upscaled (nearest) so it is at least ~`min_width` px wide."""
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    scale = max(1, min_width // img.width)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    files.save_image(img, path)


def save_image_grid(x: np.ndarray, path: str, ncol: int | None = None) -> np.ndarray:
    """Images in [-1, 1] (clamped) as one PNG grid (see `save_grid_png`); returns the grid."""
    grid = make_grid(to_uint8(x), ncol)
    save_grid_png(grid, path)
    return grid


def loss_curves(metrics_path: str, path: str, keys: Sequence[str] = ("loss", "out_q", "out_p")):
    """Plot the logged metrics of a run's metrics.jsonl against the step."""
    if not files.exists(metrics_path):  # nothing logged yet
        return
    rows = [json.loads(ln) for ln in files.read_text(metrics_path).splitlines() if ln.strip()]
    rows = [r for r in rows if not r.get("diverged")]
    keys = [k for k in keys if any(k in r for r in rows)]
    if not rows or not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=True):
        pts = [(r["step"], r[k]) for r in rows if k in r]
        ax.plot(*zip(*pts, strict=True))
        ax.set_xlabel("step")
        ax.set_title(k)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=100)
    plt.close(fig)


def fid_vs_length(by_length: Mapping[int, float], path: str, label: str = "FID") -> None:
    """FID against the total flow length K + κ (paper Fig. 5); `label` names the y axis."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(list(by_length), list(by_length.values()), "o-")
    ax.set_xlabel("total flow length (K + κ)")
    ax.set_ylabel(label)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=100)
    plt.close(fig)
