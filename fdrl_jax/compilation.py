"""How the flow's programs are compiled: XLA options per backend.

On CPU, XLA (jaxlib 0.10) hands convolutions, dots and reductions to the YNNPACK library by
default. With XLA's own (Eigen) kernels the convolutional estimators' training iteration and
flow run faster on the CPUs we measured (`benchmarks/cpu_vs_torch.py
--conv_grad=auto,auto+ynn`; `benchmarks/RESULTS.md`), with the same values to float32
rounding. For MLPs it depends on the shapes (the digits MLP's step was faster with YNNPACK,
the swiss roll's at batch 1024 slower), so their programs keep XLA's defaults, as do other
backends.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from fdrl_jax.models import ResNetEstimator

# No library fusions: XLA:CPU's own convolutions, dots and reductions. (Keeping YNNPACK's
# dots and reductions does not keep the convolutions out: a reduction's fusion takes in the
# convolution that feeds it.)
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def _cpu_accepts_options() -> bool:
    # jaxlib releases without the option reject it; they do not use YNNPACK either.
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(1.0).compile()
    except Exception:  # any rejection: compile with the defaults
        return False
    return True


def compiler_options(model: nn.Module) -> dict | None:
    """The options the package's flow programs over `model` (`jax.jit(...,
    compiler_options=...)`) are compiled with on the default backend: `CPU_OPTIONS` for a
    convolutional net on CPU, None (XLA's defaults) otherwise."""
    if not isinstance(model, ResNetEstimator) or jax.default_backend() != "cpu":
        return None
    return dict(CPU_OPTIONS) if _cpu_accepts_options() else None
