"""How the flow's programs are compiled: XLA options per backend.

On CPU, XLA (jaxlib 0.10) hands convolutions to the YNNPACK library by default; XLA's own
(Eigen) convolutions run the estimator's training iteration and flow faster on the CPUs we
measured (`benchmarks/cpu_vs_torch.py --ynn`, figures in `benchmarks/RESULTS.md`), with the
same values to float32 rounding. Other backends compile with XLA's defaults.
"""

from __future__ import annotations

import functools

import jax

# XLA:CPU's convolutions instead of YNNPACK's (an empty list of library fusion types).
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
