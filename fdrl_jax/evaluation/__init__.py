"""Evaluation: sample-quality metrics and figures."""

from fdrl_jax.evaluation.toy_metrics import energy_distance, sliced_wasserstein2

__all__ = ["energy_distance", "sliced_wasserstein2"]
