"""Figures written by the drivers (matplotlib, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


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
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def panels(sets: Sequence[tuple[str, np.ndarray]], path: str) -> None:
    """One scatter panel per (title, points), sharing axes."""
    fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 4), sharex=True, sharey=True)
    for ax, (title, x) in zip(np.atleast_1d(axes), sets, strict=True):
        _scatter(ax, x, c="tab:blue", alpha=0.5)
        ax.set_title(title)
        ax.set_aspect("equal")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
