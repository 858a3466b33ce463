"""Evaluation, pure: sample-quality metrics (`toy_metrics`: energy distance, sliced W2, the
classifier two-sample test, k-NN support, mode coverage), FID (`fid`, `inception`,
`inception_weights`, `torchvision_inception`, `features`), the digits classifier's scores and
the paper's figures as arrays (`figures`), translation's content kept (`translation`).
`--mode=eval` itself is `modes/eval_mode.py`."""

from fdrl_jax.evaluation.toy_metrics import (
    c2st,
    energy_distance,
    mode_coverage,
    sliced_wasserstein2,
    support,
)

__all__ = ["c2st", "energy_distance", "mode_coverage", "sliced_wasserstein2", "support"]
