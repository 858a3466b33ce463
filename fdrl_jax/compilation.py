"""How the flow's programs are compiled: XLA options per backend.

On CPU, XLA (jaxlib 0.10) hands convolutions, dots and reductions to the YNNPACK library by
default; with XLA's own (Eigen) kernels the image estimators' training iteration and flow run
faster on the CPUs we measured, and the 2D toys' MLPs as fast (`benchmarks/cpu_vs_torch.py
--conv_grad=auto,auto+ynn`; `benchmarks/RESULTS.md`), with the same values to float32
rounding. Other backends compile with XLA's defaults.
"""

from __future__ import annotations

import functools

import jax

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


def compiler_options() -> dict | None:
    """The options the package's flow programs (`jax.jit(..., compiler_options=...)`) are
    compiled with on the default backend: `CPU_OPTIONS` on CPU, None (XLA's defaults) else."""
    if jax.default_backend() != "cpu" or not _cpu_accepts_options():
        return None
    return dict(CPU_OPTIONS)
