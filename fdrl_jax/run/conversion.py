"""`python -m fdrl_jax.convert`: a run of the reference PyTorch implementation into a work
directory of ours (then every --mode works on it), and a run of ours out to a framework-neutral
.npz or to the reference's checkpoint layout.

- `import_reference`: the checkpoint's weights, EMA weights (spectral norm's vectors included),
  Adam moments and step become the latest checkpoint of a new work directory, and its
  data-dependent prior (`<dataset>_ddp.pt`) that work directory's `prior.npz`, stored under
  the config's prior settings so that every later run with this config reuses it.
- `export_npz`: the EMA params (+ spectral-norm state) and the prior (`interop/exported.py`).
- `export_reference`: {step, model, optim, ema, scheduler, config} as its train_*.py saves
  them, and the prior as its pickled MultivariateNormal, for its eval_ddp.py / train_*.py.
torch is needed for the two reference commands only (imported by `interop.torch_files`).
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import traverse_util

from fdrl_jax import configlib, experiment, parallel, trainer
from fdrl_jax.errors import ConfigError, DataError, WorkdirError
from fdrl_jax.experiment import build_experiment
from fdrl_jax.interop import reference_checkpoint, reference_config, state_dict, torch_files
from fdrl_jax.interop.exported import save_export
from fdrl_jax.priors import FullCovariancePrior, LowRankPrior
from fdrl_jax.run import files
from fdrl_jax.run.checkpoints import Checkpointer, restore_for_inference

PROVENANCE = "reference.json"  # <workdir>/reference.json: where an imported run came from
# TFDS names -> the reference's dataset names (its prior file is `<dataset>_ddp.pt`)
_REFERENCE_DATASETS = {"celeb_a": "celeba", "lsun/church_outdoor": "lsun_church"}


def _variables(params, stats) -> dict:
    return {"params": params, **stats}


def _split(variables: dict) -> tuple[dict, dict]:
    return variables["params"], {k: v for k, v in variables.items() if k != "params"}


def _find(opt_state, cls):
    return next((i for i, s in enumerate(opt_state) if isinstance(s, cls)), None)


def _optimizer_state(template_opt, moments, step: int):
    """Our Adam state (optax.adam: scale_by_adam, then the schedule) with `moments` (or zeros)
    and the schedule's count at `step`, so the learning rate continues where it was."""
    opt = list(jax.tree.map(lambda t: np.zeros(t.shape, t.dtype), template_opt))
    adam, sched = _find(opt, optax.ScaleByAdamState), _find(opt, optax.ScaleByScheduleState)
    if adam is None or sched is None:
        raise NotImplementedError(f"unexpected optimiser state {type(template_opt)}")
    if moments is not None:
        opt[adam] = opt[adam]._replace(
            count=np.int32(moments.count),
            mu=traverse_util.unflatten_dict(moments.mu),
            nu=traverse_util.unflatten_dict(moments.nu),
        )
    opt[sched] = opt[sched]._replace(count=np.int32(step))
    return type(template_opt)(opt)


def _lr_at(config, step: int) -> float:
    _, schedule = trainer.optimizer_for(config)
    return float(schedule(step))


def reference_state(ckpt: reference_checkpoint.ReferenceCheckpoint, template, config, source: str):
    """(our TrainState shaped like `template` holding the reference checkpoint, warnings,
    whether Adam's moments were imported: they are when the optimiser state matches the net,
    else a fresh Adam state starts and a warning says so)."""
    t_vars = _variables(template.params, template.stats)
    warnings = []
    try:
        live = state_dict.from_state_dict(ckpt.model, t_vars)
        ema = state_dict.from_state_dict(ckpt.ema, t_vars) if ckpt.ema else live
    except ValueError as e:
        theirs = reference_config.describe_net(reference_config.reference_net(ckpt.config))
        raise DataError(
            f"{source}: {e} The checkpoint's config describes {theirs}; this config's net is "
            f"{reference_config.describe_net(reference_config.our_net(config.model))}."
        ) from e
    if not ckpt.ema:
        warnings.append("the checkpoint has no EMA weights: its weights are used for both")
    moments = None
    if ckpt.optim is not None:
        try:
            order = reference_checkpoint.parameter_order(ckpt.model)
            moments, more = reference_checkpoint.adam_from_reference(ckpt.optim, order, t_vars)
            warnings += more
        except (ValueError, KeyError, TypeError) as e:
            warnings.append(f"Adam's state was not imported ({e}); a fresh one starts")
    else:
        warnings.append("the checkpoint has no optimiser state; a fresh Adam state starts")
    if moments is not None and moments.count != ckpt.step:
        warnings.append(f"Adam's step count is {moments.count}, the checkpoint's {ckpt.step}")
    last_lr = (ckpt.scheduler or {}).get("_last_lr")
    if last_lr and not math.isclose(float(last_lr[0]), _lr_at(config, ckpt.step), rel_tol=1e-5):
        warnings.append(
            f"learning rate: the reference's was {float(last_lr[0]):g} at step {ckpt.step}, "
            f"this config's schedule gives {_lr_at(config, ckpt.step):g} (optim.lr, "
            "optim.decay_steps, optim.decay_factor)"
        )
    (params, stats), (ema_params, ema_stats) = _split(live), _split(ema)
    state = template.replace(
        step=np.int32(ckpt.step),
        params=params,
        ema_params=ema_params,
        opt_state=_optimizer_state(template.opt_state, moments, ckpt.step),
        lr_scale=np.float32(1.0),
        stats=stats,
        ema_stats=ema_stats,
    )
    # the template's dtypes (and tree structure: a mismatch raises here, not at restore)
    state = jax.tree.map(lambda t, v: jnp.asarray(v, t.dtype), template, state)
    return state, warnings, moments is not None


def _check_new_workdir(workdir: str) -> str:
    files.check_writable(workdir)
    directory = os.path.join(workdir, "checkpoints")
    existing = Checkpointer(directory, create=False)
    if existing.all_steps():
        raise WorkdirError(
            f"{workdir} already holds checkpoints (steps {existing.all_steps()}); import into a "
            "new --workdir."
        )
    return directory


def import_reference(config, workdir: str, checkpoint: str, prior: str | None = None):
    """Write `workdir` (config.json, checkpoints/, [prior.npz], reference.json) holding the
    reference checkpoint at `checkpoint` and, optionally, its prior file; returns the state.

    Checks the checkpoint's own config against `config`: a different loss (the net's output
    would mean something else) is an error; other differences (divergence, flow, EMA decay,
    optimiser, step counts, net, image size) are logged and kept in reference.json."""
    configlib.validate(config)
    if prior and config.prior.name != "ddp":
        raise ConfigError(
            f"--prior is the reference's data-dependent prior, but this config's prior is "
            f"{config.prior.name!r}; use a config with prior.name = 'ddp' or leave --prior out."
        )
    ckpt = reference_checkpoint.parse_checkpoint(
        torch_files.load_checkpoint(checkpoint), checkpoint
    )
    errors, _ = reference_config.compare(ckpt.config, config, ())
    if errors:
        raise ConfigError(f"{checkpoint}: " + "; ".join(errors) + ".")
    directory = _check_new_workdir(workdir)
    if prior:
        arrays = torch_files.load_reference_prior(prior)
        shape = reference_checkpoint.reference_prior_shape(
            arrays["loc"].size, ckpt.config.get("img_size")
        )
        ours = reference_checkpoint.prior_from_reference(arrays, shape)
        # stored under this config's prior settings: later runs load it instead of fitting
        files.save_prior(
            os.path.join(workdir, "prior.npz"), ours, experiment.prior_fingerprint(config)
        )
    elif config.prior.name == "ddp":
        logging.info("No --prior: fitting the data-dependent prior to the data, as the reference.")
    exp = build_experiment(config, prior_cache=files.PriorFile(workdir))
    if prior and tuple(exp.prior.shape) != exp.shape:
        raise DataError(f"The prior in {prior} is over {exp.prior.shape}, the data {exp.shape}.")
    _, warnings = reference_config.compare(ckpt.config, config, exp.shape)
    template = jax.eval_shape(lambda: trainer.initial_state(exp))
    state, more, adam_imported = reference_state(ckpt, template, config, checkpoint)
    warnings += more
    for w in warnings:
        logging.warning("Importing %s: %s", checkpoint, w)
    ckpt_out = Checkpointer(directory)
    ckpt_out.save(int(state.step), state)
    ckpt_out.close()
    files.write_config(config, workdir)
    provenance = {
        "checkpoint": os.path.abspath(checkpoint),
        "prior": os.path.abspath(prior) if prior else None,
        "step": int(state.step),
        "adam_state": "imported" if adam_imported else "fresh",
        "warnings": warnings,
        "reference_config": ckpt.config,
    }
    if parallel.is_main_process():
        files.write_json(files.path(workdir, PROVENANCE), provenance, indent=2, default=str)
    logging.info("Imported %s (step %d) into %s", checkpoint, int(state.step), workdir)
    return state


def _data_prior(exp):
    return exp.prior if isinstance(exp.prior, FullCovariancePrior | LowRankPrior) else None


def export_npz(config, workdir: str, out: str) -> str:
    """The latest checkpoint's EMA params (and spectral-norm state) and the data-dependent
    prior to `out` (layout: `interop/exported.py`); returns `out`."""
    exp, state = restore_for_inference(config, workdir)
    host = parallel.to_host(state)
    prior = _data_prior(exp)
    if parallel.is_main_process():
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        save_export(
            out,
            _variables(host.ema_params, host.ema_stats),
            None if prior is None else jax.tree.map(np.asarray, prior),
            int(host.step),
            config.to_json_best_effort(),
        )
        logging.info("Exported the EMA params of step %d to %s", int(host.step), out)
    return out


def reference_dataset(config) -> str:
    """The reference's name for the config's data (its prior file is `<name>_ddp.pt`)."""
    if config.data.name == "tfds":
        return _REFERENCE_DATASETS.get(config.data.tfds_name, config.data.tfds_name)
    return config.data.name


def export_reference(config, workdir: str, out: str, prior_out: str | None = None) -> str:
    """The latest checkpoint as the reference's checkpoint file `out` ({step, model, optim,
    ema, scheduler, config}) and, for a data-dependent prior, its `<dataset>_ddp.pt` (beside
    `out` unless `prior_out` is given); returns `out`."""
    exp, state = restore_for_inference(config, workdir)
    host = parallel.to_host(state)
    live = _variables(host.params, host.stats)
    step = int(host.step)
    dataset = reference_dataset(config)
    ref, warnings = reference_config.to_reference(config, exp.shape, dataset)
    names = state_dict.param_names(live)
    attention = reference_config.our_net(config.model).get("attention_after")
    order = reference_checkpoint.reference_parameter_order(list(names.values()), attention)
    adam = _find(host.opt_state, optax.ScaleByAdamState)
    moments = None
    if adam is not None:
        a = host.opt_state[adam]
        flat = traverse_util.flatten_dict
        moments = reference_checkpoint.AdamMoments(int(a.count), flat(dict(a.mu)), flat(dict(a.nu)))
    if float(host.lr_scale) != 1.0:
        warnings.append(
            f"this run's learning rate was lowered × {float(host.lr_scale):g} by divergence "
            "rollbacks; the exported optimiser has it too, its config's learning_rate not"
        )
    decays = sum(1 for b in config.optim.decay_steps if b <= step)
    if not parallel.is_main_process():
        return out
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch_files.save_checkpoint(
        out,
        step=step - 1,  # the reference saves the index of its last iteration
        model=state_dict.to_state_dict(live),
        ema=state_dict.to_state_dict(_variables(host.ema_params, host.ema_stats)),
        config=ref,
        order=order,
        moments=None if moments is None else reference_checkpoint.adam_to_reference(moments, live),
        adam_count=0 if moments is None else moments.count,
        lr=float(config.optim.lr) * float(host.lr_scale),
        betas=(float(config.optim.b1), float(config.optim.b2)),
        decay_factor=float(config.optim.decay_factor),
        decays=decays,
    )
    prior = _data_prior(exp)
    if prior is not None:
        folder = os.path.dirname(os.path.abspath(out))
        prior_out = prior_out or os.path.join(folder, f"{dataset}_ddp.pt")
        arrays = reference_checkpoint.prior_to_reference(jax.tree.map(np.asarray, prior))
        torch_files.save_reference_prior(prior_out, arrays)
        logging.info("Wrote the prior to %s (the reference loads `<dataset>_ddp.pt`)", prior_out)
    for w in warnings:
        logging.warning("Exporting to the reference: %s", w)
    logging.info("Exported step %d to %s", step, out)
    return out
