"""An experiment's sampler: Algorithm 2 (`algorithms.sample`, `sample_from`) compiled with the
config's settings, the one implementation every caller uses: --mode=sample and training's
sample grids, --mode=eval (trajectories at several flow lengths, figures), class-conditional
sampling (a composed potential with per-sample labels) and translation (given starting points).

What each of them needs is done here once:
- the flow length defaults to K + κ and is a run-time value, as are the recorded lengths: one
  compiled program serves every length (and every `record_at` of the same count);
- on a mesh the batch (n prior draws, or the starting points, and the labels) is padded to a
  multiple of the device count and sharded; the first n rows are returned, the same as on one
  device;
- `chunks` / `sample_many` draw large n a batch at a time on the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np
from absl import logging

from fdrl_jax import algorithms, compilation, conditional, divergences, flows, parallel
from fdrl_jax.experiment import Experiment

Array = jax.Array
# (variables, labels) -> the potential the flow descends; labels are per sample (or None).
PotentialFn = Callable[[object, Array | None], flows.Potential]


def fdrl_potential(exp: Experiment) -> PotentialFn:
    """x ↦ f'(r_θ(x)) with the given variables: FDRL's own flow (labels are not used)."""
    return lambda variables, labels: flows.make_potential(exp.apply_fn, variables, exp.fprime)


def chunks(key: Array, n: int, batch_size: int) -> Iterator[tuple[Array, int]]:
    """(key, size) of each batch of n draws taken `batch_size` at a time: a single batch uses
    `key` itself (so a small n equals one call), batch i of several `fold_in(key, i)`."""
    if n <= batch_size:
        yield key, n
        return
    for i, start in enumerate(range(0, n, batch_size)):
        yield jax.random.fold_in(key, i), min(batch_size, n - start)


def _pad(x: np.ndarray | None, size: int) -> np.ndarray | None:
    """x with its last row repeated up to `size` rows (each row's flow is its own)."""
    if x is None or len(x) == size:
        return x
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)])


class Sampler:
    """Algorithm 2 of an experiment, compiled once per kind of call.

    `num_steps` is the default flow length (K + κ unless given); `potential` builds the
    potential from the variables passed at call time (default `fdrl_potential`: the
    estimator's f'(r)); `clip_output` overrides `sample.clip_output`. On a `mesh` the batch is
    sharded over its devices.
    """

    def __init__(
        self,
        exp: Experiment,
        *,
        mesh=None,
        num_steps: int | None = None,
        potential: PotentialFn | None = None,
        clip_output: bool | None = None,
    ):
        c = exp.config
        self.exp = exp
        self.num_steps = c.flow.num_steps + c.flow.kappa if num_steps is None else int(num_steps)
        self.devices = 1 if mesh is None else mesh.size
        self._sharding = None if mesh is None else parallel.batch_sharded(mesh)
        constrain = (lambda x: x) if mesh is None else parallel.batch_constraint(mesh)
        build = potential or fdrl_potential(exp)
        clip = c.sample.clip_output if clip_output is None else clip_output
        flow_settings = {"eta": flows.config_step_size(c), "nu": c.flow.nu, "clip_output": clip}

        def from_prior(variables, prior, key, labels, n, steps, marks):
            labels = None if labels is None else constrain(labels)
            return algorithms.sample(
                build(variables, labels),
                prior,
                key,
                n,
                num_steps=steps,
                record_at=marks,
                clip_prior=c.prior.clip,
                constrain=constrain,
                **flow_settings,
            )

        def from_points(variables, x0, key, labels, steps, marks):
            labels = None if labels is None else constrain(labels)
            return algorithms.sample_from(
                build(variables, labels),
                constrain(x0),
                key,
                num_steps=steps,
                record_at=marks,
                **flow_settings,
            )

        options = compilation.compiler_options(exp.model)
        self._from_prior = jax.jit(from_prior, static_argnums=4, compiler_options=options)
        self._from_points = jax.jit(from_points, compiler_options=options)

    def _settings(self, num_steps, record_at):
        steps = self.num_steps if num_steps is None else int(num_steps)
        marks = None
        if record_at is not None:
            marks = np.asarray(record_at, np.int32).reshape(-1)
            if marks.size and (marks.min() < 0 or marks.max() > steps):
                raise ValueError(f"record_at steps must lie in [0, {steps}], got {list(marks)}")
        # int32 arrays, never Python ints (weakly typed: they would compile a second program)
        return np.int32(steps), marks

    def _padded(self, n: int) -> int:
        return -(-n // self.devices) * self.devices

    @staticmethod
    def _first(out, n: int, marks):
        if marks is None:
            return out[:n]
        x, traj = out
        return x[:n], traj[:, :n]

    def __call__(
        self,
        variables,
        key: Array,
        n: int,
        *,
        num_steps: int | None = None,
        record_at: Sequence[int] | None = None,
        labels=None,
    ):
        """n samples from the prior: x, or (x, trajectory at `record_at`). `labels` (n,) are
        passed to the potential (class-conditional sampling)."""
        steps, marks = self._settings(num_steps, record_at)
        size = self._padded(n)
        if labels is not None:
            labels = _pad(np.asarray(labels, np.int32), size)
        out = self._from_prior(variables, self.exp.prior, key, labels, size, steps, marks)
        return out if size == n else self._first(out, n, marks)

    def flow(
        self,
        variables,
        x0,
        key: Array,
        *,
        num_steps: int | None = None,
        record_at: Sequence[int] | None = None,
        labels=None,
    ):
        """Samples from the given starting points x0 (B, ...) instead of prior draws."""
        steps, marks = self._settings(num_steps, record_at)
        n = len(x0)
        x0 = _pad(np.asarray(x0, np.float32), self._padded(n))
        if self._sharding is not None:
            x0 = jax.device_put(x0, self._sharding)
        if labels is not None:
            labels = _pad(np.asarray(labels, np.int32), len(x0))
        out = self._from_points(variables, x0, key, labels, steps, marks)
        return out if len(x0) == n else self._first(out, n, marks)

    def sample_many(self, variables, key: Array, n: int, batch_size: int, labels=None):
        """n samples as a numpy array on every process, drawn `batch_size` at a time
        (`chunks`); `labels` (n,) are split with them."""
        out, done = [], 0
        for k, m in chunks(key, n, batch_size):
            part = None if labels is None else np.asarray(labels)[done : done + m]
            out.append(parallel.to_host(self(variables, k, m, labels=part)))
            done += m
            logging.log_every_n_seconds(logging.INFO, "sampled %d/%d", 30, done, n)
        return np.concatenate(out)


def conditional_sampler(
    exp: Experiment,
    classifier_apply: Callable,
    phi: float,
    *,
    num_steps: int | None = None,
    mesh=None,
) -> Sampler:
    """The sampler of the estimator composed with a classifier p(y|x) (`conditional.py`;
    `classifier_apply(params, x)` -> logits): call it with variables = (the estimator's
    variables, the classifier's params) and per-sample `labels`."""
    output = divergences.FPRIME_INPUT[exp.config.divergence]

    def potential(variables, labels):
        estimator, guide = variables
        return conditional.make_conditional_potential(
            exp.apply_fn,
            estimator,
            exp.fprime,
            output,
            lambda x: classifier_apply(guide, x),
            labels,
            phi,
        )

    return Sampler(exp, mesh=mesh, num_steps=num_steps, potential=potential)
