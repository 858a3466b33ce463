"""Every shipped config (`configs/*.py`): it loads and validates with each pairing, its `paper`
argument (and cifar10's `uniform`) is the authors' settings field by field, the toys share one
table of CPU settings for every pairing (`configlib.TOY_CPU`), and its smoke variant trains
and samples."""

import glob
import math
import os

import jax
import numpy as np
import pytest
from helpers import ROOT, configs, copy_run
from PIL import Image

from fdrl_jax import configlib
from fdrl_jax.data import IMAGE_SOURCES, load_image_set
from fdrl_jax.errors import ConfigError
from fdrl_jax.experiment import build_experiment
from fdrl_jax.models import ARCHS
from fdrl_jax.modes.sample_mode import sample_mode
from fdrl_jax.run.checkpoints import restore_for_inference

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
TOYS = ("swissroll.py", "gaussians8.py", "gaussians25.py")


def load(path, arg=None):
    return configlib.load_config(path + (f":{arg}" if arg else ""))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_and_its_pairings_validate(path):
    for arg in (None, "lsif-chi2", "lr-kl", "lr-js", "lr-logd"):
        config = load(path, arg)
        configlib.validate(config)
        if arg:
            assert (config.loss, config.divergence) == configlib.PAIRINGS[arg]
        if config.data.name not in ("tfds", "npz", "folder"):  # their data is not shipped
            build_experiment(config)


@pytest.mark.parametrize("name", TOYS)
def test_the_toys_paper_argument_is_the_papers_2d_settings(name):
    """20k steps of batch 1024, K = 200, η = 1, lr 5e-5 × 0.1 at 5k / 10k / 15k, and samples
    after K steps (κ = 0: the authors' toy code has none); without it, shorter CPU runs."""
    paper, default = load(os.path.join(ROOT, "configs", name), "paper"), configlib.default_config()
    for section in ("train", "optim", "model", "prior"):
        assert paper[section].to_dict() == default[section].to_dict(), section
    assert (paper.flow.num_steps, paper.flow.eta, paper.flow.kappa) == (200, 1.0, 0)
    cpu = load(os.path.join(ROOT, "configs", name))
    assert cpu.train.num_steps < paper.train.num_steps and cpu.flow.kappa == 0


def test_the_cifar10_cpu_argument_is_a_16px_narrow_run(tmp_path):
    """`cifar10.py:cpu`: the CPU-scale CIFAR-10 setting; its network takes 16² images (32² JPEG
    layout data resized) and the full data-dependent prior is fitted at that size."""
    config = load(os.path.join(ROOT, "configs", "cifar10.py"), "cpu")
    assert (config.data.size, config.data.resize) == (16, 16)
    assert (config.model.stem, config.model.stages) == (
        32,
        ((32, 1, 1), (64, 1, 2), (64, 1, 2), (64, 1, 2)),
    )
    assert (config.loss, config.divergence, config.prior.name, config.prior.form) == (
        "lsif",
        "chi2",
        "ddp",
        "full",
    )
    assert (config.flow.num_steps, config.flow.kappa, config.flow.eta) == (20, 5, 3.0)
    assert (config.optim.lr, config.optim.decay_steps) == (2e-4, ())
    assert (config.train.batch_size, config.train.num_steps) == (64, 1_000)
    assert (config.eval.num_samples, config.eval.reference_samples) == (2_000, 5_000)
    assert config.eval.fid_lengths == (0, 10, 25)
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", images=images)
    config.data.name, config.data.path = "npz", str(tmp_path / "tiny.npz")
    exp = build_experiment(config)
    assert exp.shape == (16, 16, 3)
    x = exp.prior.sample(jax.random.PRNGKey(0), 4)
    variables = exp.model.init(jax.random.PRNGKey(1), x)
    assert np.all(np.isfinite(np.asarray(exp.model.apply(variables, x))))


def test_every_toy_pairing_and_point_cloud_gets_the_one_cpu_table():
    """No per-shape or per-pairing values: the three toys resolve to `configlib.TOY_CPU`'s
    values with each pairing (a point cloud trains with a toy file and `data.name=points`)."""
    assert configlib.TOY_CPU["flow.normalise_eta"] is True
    for name in TOYS:
        for arg in ("lsif-chi2", "lr-kl", "lr-js", "lr-logd"):
            flat = configlib.flatten(load(os.path.join(ROOT, "configs", name), arg).to_dict())
            assert {k: flat[k] for k in configlib.TOY_CPU} == configlib.TOY_CPU, (name, arg)
            assert flat["flow.kappa"] == 0


@pytest.mark.parametrize("name", TOYS)
def test_the_paper_argument_and_the_image_configs_keep_the_papers_flow(name):
    paper = load(os.path.join(ROOT, "configs", name), "lr-js,paper")
    assert paper.flow.normalise_eta is False and paper.flow.eta == 1.0
    assert load(os.path.join(ROOT, "configs", name), "paper").model.unit_ratio_start is False
    for path in CONFIGS:
        if load(path).data.name in IMAGE_SOURCES:
            assert load(path).flow.normalise_eta is False, path
            assert load(path).model.unit_ratio_start is False, path


SMOKE = [p for p in CONFIGS if os.path.basename(p) != "default.py"]


@pytest.mark.slow
@pytest.mark.parametrize("path", SMOKE, ids=os.path.basename)
def test_the_smoke_variant_trains_and_samples(path, smoke_run, tmp_path):
    config, wd = copy_run(smoke_run(os.path.basename(path)), tmp_path)  # trained once
    exp, state = restore_for_inference(config, wd)
    assert int(state.step) == config.train.num_steps
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.ema_variables))
    if config.prior.name == "ddp":  # the fitted prior is stored for later runs
        assert os.path.exists(os.path.join(wd, "prior.npz"))
    with np.load(sample_mode(config, wd)) as z:
        assert z["samples"].shape == (config.sample.num_samples, *exp.shape)
        if config.data.name in IMAGE_SOURCES:
            assert z["images"].dtype == np.uint8
            assert -1.0 <= z["samples"].min() and z["samples"].max() <= 1.0  # clamped
    assert os.path.exists(os.path.join(wd, "eval", "samples.png"))


# ----------------------------------------------------------------------------- `paper`, `uniform`
# The authors' settings, written out here (paper Appendix B/F, Sec. 3.1, 6.3-6.5, and the
# configuration files of their code), so that changing a shipped value the wrong way fails.
TOY_2D = {  # the authors' toy configuration (batch 1024, K = 200, η = 1, lr 5e-5, 20k steps)
    "train.batch_size": 1024,
    "train.num_steps": 20_000,
    "train.ema_decay": 0.998,
    "optim.lr": 5e-5,
    "optim.b1": 0.9,
    "optim.b2": 0.999,
    "optim.decay_steps": (5_000, 10_000, 15_000),
    "optim.decay_factor": 0.1,
    "flow.num_steps": 200,
    "flow.kappa": 0,  # samples after K steps: the authors' toy code has no κ
    "flow.eta": 1.0,
    "flow.nu": 0.01,
    "model.name": "mlp",
    "model.hidden": 64,
    "model.num_hidden_layers": 3,
    "model.param_init": "torch",
    "prior.name": "gaussian",
    "prior.mean": 0.0,
    "prior.std": 1.0,
    "prior.clip": False,
    "loss": "lsif",
    "divergence": "chi2",
}
IMAGES = {  # Appendix F, the authors' cifar10/celeba/lsun_church.yaml and eval_ddp.py
    "loss": "lsif",
    "divergence": "chi2",
    "model.name": "resnet",
    "model.param_init": "torch",
    "prior.name": "ddp",
    "prior.clip": True,
    "prior.jitter": 1e-4,
    "prior.form": "full",
    "data.flip": True,
    "data.dequant_std": 0.03,
    "flow.num_steps": 100,
    "flow.kappa": 20,
    "flow.eta": 3.0,
    "flow.nu": 0.01,
    "optim.lr": 1e-4,
    "optim.b1": 0.9,
    "optim.b2": 0.999,
    "optim.decay_steps": (80_000, 90_000),
    "optim.decay_factor": 0.1,
    "train.batch_size": 64,
    "train.num_steps": 100_000,
    "train.ema_decay": 0.998,
    "sample.clip_output": True,
    "eval.num_samples": 50_000,
    "eval.fid_stats": "",  # against the training images,
    "eval.reference_samples": 0,  # all of them
    "eval.fid_lengths": (100, 110, 120, 130),  # Fig. 5
}
TORCHVISION_FID = {"eval.feature_net": "torchvision"}
CAT2DOG_IMAGE = {"resize": 84, "keep_aspect": False, "size": 64, "crop_first": 0, "channels": 3}
PAPER = {
    "swissroll.py:paper": {**TOY_2D, "data.name": "swissroll"},
    "gaussians8.py:paper": {**TOY_2D, "data.name": "8gaussians"},
    "gaussians25.py:paper": {**TOY_2D, "data.name": "25gaussians"},
    "gaussians25.py:lr-kl,paper": {
        **TOY_2D,
        "data.name": "25gaussians",
        "loss": "lr",
        "divergence": "kl",
    },
    "default.py:paper": {**TOY_2D, "data.name": "swissroll"},
    "chasm.py:paper": {
        **TOY_2D,
        "data.name": "chasm",
        "prior.std": math.sqrt(0.1),
        "train.num_steps": 1_000,  # Fig. 3: T = 1000
        "loss": "lr",
        "divergence": "kl",
    },
    "cifar10.py:paper": {
        **IMAGES,
        **TORCHVISION_FID,
        "model.arch": "cifar10",
        "spectral_norm": True,  # the authors' cifar10.yaml
        "data.size": 32,
        "data.resize": 0,
        "data.crop_first": 0,
        "classifier.name": "robust_resnet50",  # Sec. 6.4's guide
        "conditional.phi": 0.1,
        "conditional.num_steps": None,  # K + 10, the authors' notebook
    },
    "cifar10.py:lr-kl,paper": {
        **IMAGES,
        **TORCHVISION_FID,
        "loss": "lr",
        "divergence": "kl",
        "classifier.name": "robust_resnet50",
    },
    "cifar10.py:paper,uniform": {  # FDRL-UP, Sec. 6.3 / Appendix F
        **IMAGES,
        **TORCHVISION_FID,
        "prior.name": "uniform",
        "prior.low": -1.0,
        "prior.high": 1.0,
        "prior.clip": False,
        "train.num_steps": 120_000,
        "optim.decay_steps": (100_000, 110_000),  # 20k and 10k steps before the end
        "flow.kappa": 10,
    },
    "celeba64.py:paper": {
        **IMAGES,
        **TORCHVISION_FID,
        "model.arch": "celeba64",
        "spectral_norm": False,
        "data.crop_first": 140,
        "data.resize": 64,
        "data.size": 64,
    },
    "church128.py:paper": {
        **IMAGES,
        "model.arch": "church128",
        "spectral_norm": False,
        "data.resize": 128,
        "data.keep_aspect": False,  # Resize((128, 128))
        "data.size": 128,
        "prior.form": "full",
    },
    "cat2dog.py:paper": {  # Sec. 6.5 / Appendix F and the authors' cat2dog.yaml
        **{k: v for k, v in IMAGES.items() if not k.startswith(("eval.", "prior."))},
        **{f"data.{k}": v for k, v in CAT2DOG_IMAGE.items()},
        **{f"prior.source.{k}": v for k, v in CAT2DOG_IMAGE.items()},
        "prior.name": "dataset",
        "prior.clip": False,
        "prior.source.flip": True,
        "prior.source.dequant_std": 0.03,
        "model.arch": "cat2dog",
        "spectral_norm": True,
        "flow.kappa": 10,
        "train.num_steps": 40_000,
        "optim.decay_steps": (20_000, 30_000),
        "translate.num_steps": 110,
    },
}


def resolved(config, name):
    """A config value by dotted name; `spectral_norm` is the network's (its arch's default)."""
    if name == "spectral_norm":
        sn = config.model.spectral_norm
        return ARCHS[config.model.arch]["spectral_norm"] if sn is None else sn
    for part in name.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("spec", sorted(PAPER))
def test_paper_and_uniform_are_the_authors_settings_field_by_field(spec):
    config = configlib.load_config(configs(spec))
    configlib.validate(config)
    wrong = {
        name: (resolved(config, name), want)
        for name, want in PAPER[spec].items()
        if resolved(config, name) != (pytest.approx(want) if isinstance(want, float) else want)
    }
    assert not wrong, f"{spec}: (got, the authors') = {wrong}"


def test_without_paper_the_measured_defaults_stay():
    """`paper` changes only what it says: the shipped defaults keep their measured choices."""
    church, church_paper = (load(configs("church128.py"), a) for a in (None, "paper"))
    assert (church.prior.form, church.prior.rank) == ("lowrank", 512)
    assert church_paper.prior.form == "full"
    cat, cat_paper = (load(configs("cat2dog.py"), a) for a in (None, "paper"))
    assert cat.data.keep_aspect and cat.prior.source.keep_aspect
    cat_paper.data.keep_aspect = cat_paper.prior.source.keep_aspect = True
    assert cat_paper.to_dict() == cat.to_dict()  # the resize is all `paper` changes there
    cifar, cifar_paper = (load(configs("cifar10.py"), a) for a in (None, "paper"))
    assert (cifar.eval.feature_net, cifar.classifier.name) == ("inception", "cnn")
    for section in ("data", "prior", "model", "flow", "optim", "train", "sample"):
        assert cifar_paper[section].to_dict() == cifar[section].to_dict(), section
    chasm = load(configs("chasm.py"))
    assert (chasm.train.num_steps, chasm.train.batch_size, chasm.flow.eta) == (2_000, 512, 0.5)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("digits.py:paper", "not in the paper"),
        ("digits_translate.py:paper", "not in the paper"),
        ("cat2dog.py:paper,cifar", "do not combine"),
        ("celeba64.py:uniform", "Unknown config argument 'uniform'"),
        ("church128.py:paper,uniform", "Unknown config argument 'uniform'"),
        ("cat2dog.py:uniform", "Unknown config argument 'uniform'"),
        ("swissroll.py:uniform", "Unknown config argument 'uniform'"),
    ],
)
def test_paper_or_uniform_where_they_make_no_sense_is_a_config_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        configlib.load_config(configs(spec))


def test_cat2dog_paper_resizes_both_sides_to_84_then_crops_64(tmp_path):
    """The authors' Resize((84, 84)) then CenterCrop(64), for the cats (the prior's source)
    and the dogs (the data): a non-square image is squashed, not cropped to its middle."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (60, 96, 3), np.uint8)  # H 60, W 96
    Image.fromarray(arr).save(tmp_path / "a.png")
    squashed = np.asarray(Image.fromarray(arr).resize((84, 84), Image.BILINEAR))[10:74, 10:74]
    paper, default = load(configs("cat2dog.py"), "paper"), load(configs("cat2dog.py"))
    for section in (paper.data, paper.prior.source):
        np.testing.assert_array_equal(load_image_set(section, str(tmp_path))[0], squashed)
    kept = np.asarray(load_image_set(default.data, str(tmp_path))[0])
    assert kept.shape == squashed.shape and not np.array_equal(kept, squashed)


def test_uniform_starts_the_flow_from_u_minus_1_1_images():
    exp = build_experiment(load(configs("cifar10.py"), "uniform,smoke"))
    x = np.asarray(exp.prior.sample(jax.random.PRNGKey(0), 64))
    assert x.shape == (64, 32, 32, 3) and -1.0 <= x.min() and x.max() <= 1.0
    assert abs(x.mean()) < 0.01 and abs(x.var() - 1 / 3) < 0.01  # U[-1, 1]: mean 0, var 1/3
