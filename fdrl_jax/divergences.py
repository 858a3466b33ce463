"""f-divergences (the flow's f') and Bregman losses (the estimator's objective).

Everything here is a pure function of the estimator's *output*: `r` for LSIF nets and `log r`
for LR / KLIEP nets (docs/algorithm.md §2–4). Working from `log r` keeps
every log/exp stable at any ratio. Additive constants of f' are dropped: they do not change the
flow's gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fdrl_jax.errors import ConfigError

Array = jax.Array

# --- f' from the network output -----------------------------------------------------------


def chi2_fprime(out: Array) -> Array:
    """Pearson χ²: f'(r) = 2(r - 1); `out` is r. (The -2 is dropped.)"""
    return 2.0 * out


def kl_fprime(out: Array) -> Array:
    """KL: f'(r) = log r + 1; `out` is log r. (The +1 is dropped.)"""
    return out


def js_fprime(out: Array) -> Array:
    """JS: f'(r) = log(2r / (r + 1)) = log σ(log r) + log 2; `out` is log r."""
    return jax.nn.log_sigmoid(out)


def logd_fprime(out: Array) -> Array:
    """logD: f'(r) = log(r + 1) + 1 = -log σ(-log r) + 1; `out` is log r."""
    return -jax.nn.log_sigmoid(-out)


FPRIMES: dict[str, Callable[[Array], Array]] = {
    "chi2": chi2_fprime,
    "kl": kl_fprime,
    "js": js_fprime,
    "logd": logd_fprime,
}

# f''(1) of each divergence. Near q = p every f-divergence is f''(1)/2 times Pearson χ², and
# its flow's force ∇f'(r) = f''(r) ∇r is f''(1) ∇r: η / f''(1) gives every pairing the same
# steps there (`flows.step_size`).
CURVATURE_AT_ONE: dict[str, float] = {"chi2": 2.0, "kl": 1.0, "js": 0.5, "logd": 0.5}

# What each f' expects the network to output.
FPRIME_INPUT: dict[str, str] = {
    "chi2": "ratio",
    "kl": "log_ratio",
    "js": "log_ratio",
    "logd": "log_ratio",
}

# --- Bregman losses: out_q on flowed samples x_K (numerator), out_p on data (denominator) ----


def lsif_loss(out_q: Array, out_p: Array) -> Array:
    """LSIF, g(y) = ½(y-1)²; the net outputs r."""
    return jnp.mean(0.5 * jnp.square(out_p)) - jnp.mean(out_q)


def lr_loss(out_q: Array, out_p: Array) -> Array:
    """Logistic regression (BCE with flowed labelled 1, data 0); the net outputs log r."""
    return jnp.mean(jax.nn.softplus(out_p)) + jnp.mean(jax.nn.softplus(-out_q))


def kliep_loss(out_q: Array, out_p: Array) -> Array:
    """The authors' KLIEP-like "KL" loss; the net outputs log r. Not used in the paper."""
    return jnp.mean(jnp.exp(out_p)) - jnp.mean(out_q)


LOSSES: dict[str, Callable[[Array, Array], Array]] = {
    "lsif": lsif_loss,
    "lr": lr_loss,
    "kliep": kliep_loss,
}

# What each loss trains the network to output.
LOSS_OUTPUT: dict[str, str] = {"lsif": "ratio", "lr": "log_ratio", "kliep": "log_ratio"}


def bregman_loss(name: str, out_q: Array, out_p: Array) -> Array:
    """The Bregman loss `name` (lsif | lr | kliep) of the estimator's outputs on flowed samples
    (`out_q`) and on data (`out_p`): `LOSSES[name](out_q, out_p)`. Pure and jit-able (the name
    is resolved when traced)."""
    return get_loss(name)(out_q, out_p)


def get_fprime(name: str) -> Callable[[Array], Array]:
    if name not in FPRIMES:
        raise ConfigError(
            f"Unknown divergence {name!r}; choose one of {sorted(FPRIMES)} "
            "(config field `divergence`)."
        )
    return FPRIMES[name]


def get_loss(name: str) -> Callable[[Array, Array], Array]:
    if name not in LOSSES:
        raise ConfigError(
            f"Unknown loss {name!r}; choose one of {sorted(LOSSES)} (config field `loss`)."
        )
    return LOSSES[name]


def check_pairing(loss: str, divergence: str) -> None:
    """Raise if the loss's network output is not what the divergence's f' reads.

    LSIF estimates r directly (it can go negative, so no log), which only χ² can use;
    LR and KLIEP estimate log r, which KL, JS and logD use.
    """
    get_loss(loss)
    get_fprime(divergence)
    if LOSS_OUTPUT[loss] != FPRIME_INPUT[divergence]:
        ok = sorted(d for d, kind in FPRIME_INPUT.items() if kind == LOSS_OUTPUT[loss])
        raise ConfigError(
            f"Invalid pairing loss={loss!r} with divergence={divergence!r}: the {loss} network "
            f"outputs {LOSS_OUTPUT[loss].replace('_', ' ')}, which pairs with {ok}. "
            "The paper's pairings are lsif-chi2, lr-kl, lr-js and lr-logd."
        )
