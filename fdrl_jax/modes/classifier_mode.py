"""`--mode=classifier`: a classifier p(y|x) of the run's labelled data, to guide
class-conditional flows; and reading one back."""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp

from fdrl_jax import configlib, parallel, robust_resnet
from fdrl_jax.classifier import (
    ApplyFn,
    accuracy,
    build_classifier,
    split_holdout,
    train_classifier,
)
from fdrl_jax.data import build_data
from fdrl_jax.data.images import to_unit_range
from fdrl_jax.errors import ConfigError, DataError
from fdrl_jax.interop.npz import load_params, save_params
from fdrl_jax.run import files

DEFAULT_PATH = os.path.join("classifier", "params.npz")


def load_classifier(cfg, path: str) -> tuple[ApplyFn, object]:
    """(apply_fn, params) of the classifier saved at `path`, with the architecture of `cfg`
    (= config.classifier) and the class count of the saved logits layer; for
    `robust_resnet50`, the imported robustness ResNet-50 (`robust_resnet.load`)."""
    if cfg.name == robust_resnet.NAME:
        net, variables = robust_resnet.load(path)
        return net.apply, variables
    params = jax.tree.map(jnp.asarray, load_params(path))
    if "logits" not in params or "kernel" not in params["logits"]:
        hint = ""
        if "meta" in params:  # a converted robustness ResNet-50
            hint = f" It holds a {robust_resnet.NAME}: set classifier.name = {robust_resnet.NAME}."
        raise DataError(
            f"{path} holds no `logits` layer: it is not a classifier saved by --mode=classifier "
            f"(or its architecture differs from config.classifier).{hint}"
        )
    model = build_classifier(cfg, params["logits"]["kernel"].shape[-1])
    return (lambda p, x: model.apply({"params": p}, x)), params


def classifier_path(config, workdir: str) -> str:
    """config.classifier.path, or <workdir>/classifier/params.npz when it is empty."""
    return config.classifier.path or os.path.join(workdir, DEFAULT_PATH)


def classifier_mode(config, workdir: str) -> dict:
    """Train a classifier on the config's labelled data (adversarially when
    classifier.adv_eps > 0), save its params to `classifier_path` and its held-out clean (and,
    if adversarial, robust) accuracy to `<params>.json`. Runs on one device."""
    configlib.validate(config)
    c = config.classifier
    if c.name == robust_resnet.NAME:
        raise ConfigError(
            f"classifier.name = {robust_resnet.NAME} is imported, not trained: python -m "
            "fdrl_jax.convert --from=robustness cifar_l2_1_0.pt OUT.npz, then "
            "--config.classifier.path=OUT.npz for --mode=conditional."
        )
    data = build_data(config.data)
    if getattr(data, "num_classes", 0) < 2:
        raise DataError(
            f"--mode=classifier needs labelled images with at least 2 classes; dataset "
            f"{config.data.name!r} has none (image folders: one subfolder per class; .npz: a "
            "`labels` array)."
        )
    train_set, held = split_holdout(data, c.holdout, c.seed)
    model = build_classifier(c, data.num_classes)
    t0 = time.time()
    params = train_classifier(
        model,
        train_set,
        num_steps=c.num_steps,
        batch_size=c.batch_size,
        lr=c.lr,
        seed=c.seed,
        adv_eps=c.adv_eps,
        adv_steps=c.adv_steps,
        adv_step_size=c.adv_step_size,
    )
    result = {
        "num_classes": data.num_classes,
        "num_train": len(train_set),
        "adv_eps": c.adv_eps,
        "train_seconds": round(time.time() - t0, 1),
    }
    if held is not None:
        apply_fn = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
        x, y = to_unit_range(held.images), held.labels
        result["num_heldout"] = len(held)
        result["heldout_accuracy"] = accuracy(apply_fn, params, x, y)
        if c.adv_eps > 0:
            result["heldout_adv_accuracy"] = accuracy(
                apply_fn, params, x, y, c.adv_eps, c.adv_steps, c.adv_step_size
            )
    path = classifier_path(config, workdir)
    if parallel.is_main_process():  # every process trained the same params; one writes
        save_params(path, params)
    directory, name = os.path.split(os.path.splitext(path)[0])
    files.write_results(directory or ".", name, result)  # <params>.json
    return result
