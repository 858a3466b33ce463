"""The README runs: every command line and `python -c` snippet in its code blocks, the command
lines in its inline code (launch scripts), and its Python blocks, in the README's order, in
one temporary directory (so `runs/...` and `data/...` of one command are there for the next).

- `python -m fdrl_jax.main ...`: parsed in-process as the command parses it (absl flags, the
  config file with its argument, every `--config.*` override), the config validated, then run
  with `:smoke` added to the config argument; an override of a field that `:smoke` shrinks
  (step counts, sizes, the data source) keeps the smoke value, and `CAPS` bounds the other
  modes' fits. Chains (train -> eval, gan -> refine, classifier -> conditional) run in order.
- `python -m fdrl_jax.convert ...`: parsed the same way, then run.
- `python -c "..."`: executed; a path whose file name is in `FIXTURES` is given a small file
  made here (e.g. a 15-image CIFAR-10 in the JPEG layout for `cifar10-jpeg.npz`).
- ```python blocks: a block defining `get_config` is an excerpt of a config file and must
  appear in one, line for line; any other block is executed, with `:smoke` configs (a line
  setting a field that `:smoke` shrinks is left out) and figures not shown.
- Launch scripts (`bash launch/X.sh CONFIG ...`, `sbatch launch/...`): the script exists and its
  config loads; not run (they start multi-host jobs).
- `NOT_RUN`: commands that need what a test cannot have (downloaded checkpoints and weights,
  several hosts) are parsed and validated only. Installing (`pip`, `python3 -m venv`), the test
  suite itself and `tfds build` (a download) are recognised and left alone.

So a renamed module, function, flag, mode or config field in any README command fails here.
"""

import importlib.util
import io
import os
import re
import shlex
import sys

import matplotlib
import numpy as np
import pytest
from absl import flags
from helpers import ROOT
from ml_collections import config_flags
from PIL import Image

from fdrl_jax import configlib, convert, main
from fdrl_jax.configlib import fields
from fdrl_jax.run import cli

README = os.path.join(ROOT, "README.md")

# (a substring of the command, why it is parsed and validated only)
NOT_RUN = (
    ("cifar_l2_1_0.pt", "the robustness library's checkpoint, downloaded by hand"),
    ("robust_resnet50.npz", "that checkpoint converted, on an LR-KL CIFAR-10 run"),
    ("--from=reference", "a checkpoint of the authors' code"),
    ("runs/cifar10_ref", "the run imported from that checkpoint"),
    ("inception_v3_google", "torchvision's Inception weights, downloaded by hand"),
    ("tv_inception.npz", "those weights converted"),
    ("ROOT/", "the Cat2dog folders, downloaded by hand"),
    ("--coordinator_address", "several hosts"),
)
if importlib.util.find_spec("torch") is None:
    NOT_RUN += (("--to=reference", "torch, not installed here (the `torch` extra)"),)
# Commands left alone: installing, the test suite, a download.
IGNORED = re.compile(r"^(pip |python3? -m (venv|pytest)|\. |tfds build|tensorboard )")
# Fits of the other modes, bounded as `:smoke` bounds training.
CAPS = {
    "gan.num_steps": 50,
    "gan.num_samples": 256,
    "classifier.num_steps": 20,
    "refine.num_steps": 5,
    "conditional.num_samples": 8,
    "translate.num_images": 16,
}


def _cifar10_jpeg(path: str) -> None:
    """A CIFAR-10 .npz in the JPEG layout: 5 images of each of 3 classes per split."""
    rng = np.random.default_rng(0)
    arrays = {"classes": np.array(["airplane", "cat", "dog"])}
    for split in ("train", "test"):
        chunks = []
        for im in rng.integers(0, 255, (15, 32, 32, 3), dtype=np.uint8):
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="JPEG")
            chunks.append(np.frombuffer(buf.getvalue(), np.uint8))
        arrays[f"{split}_jpeg"] = np.concatenate(chunks)
        arrays[f"{split}_offsets"] = np.r_[0, np.cumsum([len(c) for c in chunks])]
        arrays[f"{split}_labels"] = (np.arange(15) % 3).astype(np.uint8)
    np.savez(path, **arrays)


FIXTURES = {"cifar10-jpeg.npz": _cifar10_jpeg}  # file name -> how to make a small one


# ----------------------------------------------------------------------------- extraction


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def _shell_commands(body: str) -> list[str]:
    """The command lines of a shell block: continuations joined, comments dropped, `&&`
    chains split."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        out.extend(" ".join(shlex.quote(w) for w in part) for part in _split_and(words) if part)
    return out


def _split_and(words: list[str]) -> list[list[str]]:
    parts = [[]]
    for w in words:
        parts.append([]) if w == "&&" else parts[-1].append(w)
    return parts


INLINE = re.compile(
    r"`((?:[A-Z_]+=\S+ )*(?:python -m fdrl_jax|python -c|bash launch/|sbatch )[^`]*)`"
)


def readme_items() -> list[tuple[str, str]]:
    """("shell", command) and ("python", block) in README order (inline commands after the
    code blocks of their section)."""
    text = open(README).read()
    items = []
    for lang, body in _blocks(text):
        if lang in ("bash", "sh", "shell"):
            items += [("shell", c) for c in _shell_commands(body)]
        elif lang == "python":
            items.append(("python", body))
    for m in INLINE.finditer(re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)):
        items.append(("shell", m.group(1)))
    return items


# ----------------------------------------------------------------------------- smoke


def _smoke_changes(spec: str) -> set[str]:
    """The fields that the config's `smoke` argument changes (`spec`: "configs/x.py[:arg]")."""
    before = fields.flatten(configlib.load_config(spec).to_dict())
    after = fields.flatten(configlib.load_config(_with_smoke(spec)).to_dict())
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def _with_smoke(config_arg: str) -> str:
    path, _, arg = config_arg.partition(":")
    return f"{path}:{arg},smoke" if arg else f"{path}:smoke"


def _parse(module, argv: list[str], smoke: bool) -> tuple[flags.FlagValues, list[str]]:
    """The command line parsed as `python -m fdrl_jax.<module>` parses it, in-process."""
    if smoke:
        argv = [re.sub(r"^(--config=)(.*)$", lambda m: m[1] + _with_smoke(m[2]), a) for a in argv]
    fv = flags.FlagValues()
    module.define_flags(fv, sys_argv=argv)
    rest = cli.parse_command(fv, argv, getattr(module, "REQUIRED", {}))
    if fv.config is not None:
        overridden = {
            a.split("=", 1)[0][len("--config.") :] for a in argv if a.startswith("--config.")
        }
        if smoke:  # an override of what :smoke shrinks keeps the smoke value
            spec = config_flags.get_config_filename(fv["config"])  # with ",smoke"
            smoke_values = fields.flatten(configlib.load_config(spec).to_dict())
            for name in overridden & _smoke_changes(
                spec.removesuffix(",smoke").removesuffix(":smoke")
            ):
                fields.set_path(fv.config, name, smoke_values[name])
        for name, cap in CAPS.items():
            value = fields.flatten(fv.config.to_dict()).get(name)
            if value is not None and value > cap:
                fields.set_path(fv.config, name, cap)
        configlib.validate(fv.config)
    return fv, rest


def _fixture_paths(words: list[str], tmp: str) -> list[str]:
    """A path (argument or flag value) to a missing file whose name has a FIXTURES maker
    points at a small one made in `tmp`."""
    out = []
    for w in words:
        head, _, value = w.rpartition("=") if w.startswith("--") else ("", "", w)
        name = os.path.basename(value)
        if name in FIXTURES and not os.path.exists(value):
            path = os.path.join(tmp, "fixtures", name)
            if not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                FIXTURES[name](path)
            w = f"{head}={path}" if head else path
        out.append(w)
    return out


def _substitute_in_code(code: str, tmp: str) -> str:
    for name in FIXTURES:
        for m in set(re.findall(rf"['\"]([^'\"]*/{re.escape(name)})['\"]", code)):
            code = code.replace(m, _fixture_paths([m], tmp)[0])
    return code


# ----------------------------------------------------------------------------- running


def _not_run(command: str) -> str | None:
    return next((why for part, why in NOT_RUN if part in command), None)


def _run_shell(command: str, tmp: str, log: list) -> None:
    words = shlex.split(command)
    while words and re.match(r"^[A-Z_]+=", words[0]):  # environment assignments
        words = words[1:]
    if IGNORED.match(" ".join(words)):
        log.append(("ignored", command))
        return
    if "..." in words:
        log.append(("template", command))
        return
    if words[0] in ("bash", "sbatch"):
        script = next(w for w in words if w.startswith("launch/"))
        assert os.path.isfile(os.path.join(ROOT, script)), f"{command}: no {script}"
        config = next((w for w in words if w.startswith("configs/")), None)
        config = config or re.search(r"CONFIG=(\S+)", command)[1]
        configlib.load_config(config)
        log.append(("validated", command))
        return
    if words[:2] == ["python", "-c"]:
        exec(compile(_substitute_in_code(words[2], tmp), "<README python -c>", "exec"), {})
        log.append(("ran", command))
        return
    assert words[:2] == ["python", "-m"], f"a README command this test does not know: {command}"
    module = {"fdrl_jax.main": main, "fdrl_jax.convert": convert}[words[2]]
    argv = [words[2], *_fixture_paths(words[3:], tmp)]
    why = _not_run(command)
    fv, rest = _parse(module, argv, smoke=why is None)
    if why is not None:
        log.append(("validated", command))
        return
    if module is main:
        fv.distributed = "off"  # in a test process: never join a cluster
        main.run(fv)
    else:
        convert.run(fv, rest[1:])
    log.append(("ran", command))


def _check_excerpt(block: str) -> None:
    """A README excerpt of a config file appears in one, line for line."""
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    configs_dir = os.path.join(ROOT, "configs")
    for name in sorted(n for n in os.listdir(configs_dir) if n.endswith(".py")):
        text = [ln.strip() for ln in open(os.path.join(configs_dir, name)).read().splitlines()]
        start = [i for i, ln in enumerate(text) if ln == lines[0]]
        if any(text[i : i + len(lines)] == lines for i in start):
            return
    pytest.fail(f"The README's get_config excerpt is in no configs/*.py:\n{block}")


def _run_python(block: str, monkeypatch) -> None:
    if "def get_config" in block:
        _check_excerpt(block)
        return
    configs_dir = os.path.join(ROOT, "configs")
    smoke_fields = set().union(
        *(
            _smoke_changes(os.path.join(configs_dir, n))
            for n in os.listdir(configs_dir)
            if n.endswith(".py")
        )
    )
    kept = []
    for line in block.splitlines():  # leave out what :smoke shrinks
        m = re.match(r"\s*\w+\.([\w.]+)\s*=", line)
        kept.append("pass" if m and m[1] in smoke_fields else line)
    load = configlib.load_config
    monkeypatch.setattr(configlib, "load_config", lambda spec: load(_with_smoke(spec)))
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    exec(compile("\n".join(kept), "<README python block>", "exec"), {})
    monkeypatch.setattr(configlib, "load_config", load)


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    tmp = str(tmp_path)
    os.symlink(os.path.join(ROOT, "configs"), os.path.join(tmp, "configs"))
    monkeypatch.chdir(tmp)
    monkeypatch.setattr(sys, "argv", ["fdrl_jax.main"])
    log = []
    for kind, item in readme_items():
        try:
            if kind == "shell":
                _run_shell(item, tmp, log)
            else:
                _run_python(item, monkeypatch)
                log.append(("ran", item.splitlines()[0]))
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            raise AssertionError(f"README {kind}: {item}\n-> {type(e).__name__}: {e}") from e
    ran = [c for k, c in log if k == "ran"]
    validated = [c for k, c in log if k == "validated"]
    print(f"{len(ran)} ran, {len(validated)} validated only:", *validated, sep="\n  ")
    assert len(ran) >= 10 and validated  # the README's commands were found
