"""Scores for samples of scikit-learn's 8×8 digits: a classifier trained on the real digits.

A sample that looks like a digit gets a confident prediction, so the mean max-class
probability measures sample quality, and the histogram of predicted classes measures coverage
(every digit present, none dominating). The classifier is multinomial logistic regression on
the 1,797 real digits in [-1, 1]: deterministic, seconds to fit, no download.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def digits_classifier():
    """Logistic regression fitted to all real digits (64 pixels in [-1, 1]); cached."""
    from sklearn.datasets import load_digits  # scikit-learn: off the start-up path
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    x = d.data / 8.0 - 1.0
    return LogisticRegression(max_iter=5000).fit(x, d.target)


def to_digit_pixels(x: np.ndarray) -> np.ndarray:
    """Samples (N, 8, 8[, 1]) or (N, 64) in [-1, 1] -> (N, 64), clamped like images."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if x.shape[1] != 64:
        raise ValueError(f"Digit samples must have 64 pixels (8×8); got {x.shape[1]}")
    return np.clip(x, -1.0, 1.0)


def digits_scores(x: np.ndarray) -> dict:
    """mean max-class probability, predicted-class counts and the largest class share."""
    p = digits_classifier().predict_proba(to_digit_pixels(x))
    counts = np.bincount(p.argmax(1), minlength=10)
    return {
        "num_samples": len(p),
        "mean_max_prob": float(p.max(1).mean()),
        "class_counts": counts.tolist(),
        "classes_present": int((counts > 0).sum()),
        "largest_class_fraction": float(counts.max() / len(p)),
    }
