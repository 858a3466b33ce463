"""The ResNet estimators (`models/resnet.py`): exact parameter counts, shapes, options."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax.models import ARCHS, ResNetEstimator


def spec_param_count(arch: str, in_channels: int = 3) -> int:
    """From the paper's Table 3: conv3×3 = 9·cin·cout, 1×1 shortcut = cin·cout (shape changes), no
    conv bias; SAGAN attention = 4·C·C/8 + biases 3·C/8 + C, + γ; head Dense(1) = C + 1."""
    a = ARCHS[arch]
    n, c = 9 * in_channels * a["stem"], a["stem"]
    for i, (f, blocks, stride) in enumerate(a["stages"]):
        for j in range(blocks):
            s = stride if j == 0 else 1
            n += 9 * c * f + 9 * f * f + (c * f if (s != 1 or c != f) else 0)
            c = f
        if a["attention_after"] == i:
            n += 4 * c * (c // 8) + 3 * (c // 8) + c + 1
    return n + c + 1


# The same counts as literal numbers, so a change to the formula cannot hide a change here.
EXPECTED = {
    "cifar10": 11_374_209,  # checked by hand: 3,456 + 884,736 + 3,276,800 + 7,208,960 + 257
    "celeba64": 5_126_081,
    "church128": 5_437_377,
    # 1,728 + 77,824 + 229,376 + 8,369 (attention) + 311,296 + 917,504 + 257: the reference's
    "cat2dog": 1_546_354,
}


@pytest.mark.parametrize(
    "arch,size", [("cifar10", 32), ("celeba64", 64), ("church128", 32), ("cat2dog", 32)]
)
def test_parameter_count_matches_the_spec(arch, size):
    model = ResNetEstimator(arch=arch)
    variables = jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)))
    )
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))
    assert count == spec_param_count(arch) == EXPECTED[arch]


def test_any_size_and_channels_one_scalar_per_image_no_batch_coupling():
    model = ResNetEstimator(arch="", stem=8, stages=((8, 1, 2), (16, 1, 2)), attention_after=0)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 12, 20, 1))
    params = model.init(jax.random.PRNGKey(1), x)["params"]
    out = model.apply({"params": params}, x)
    assert out.shape == (3,)
    # Each image's output depends on that image alone (the flow needs per-sample gradients).
    np.testing.assert_allclose(model.apply({"params": params}, x[1:2])[0], out[1], rtol=1e-5)


def test_attention_starts_as_identity():
    model = ResNetEstimator(arch="cat2dog", spectral_norm=False)
    v = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    assert float(v["params"]["self_attn_module"]["gamma"]) == 0.0


def test_spectral_norm_bounds_each_layer_and_updates_only_when_asked():
    conv = nn.SpectralNorm(nn.Dense(16), n_steps=1)
    x = jnp.ones((2, 32))
    v = conv.init(jax.random.PRNGKey(0), x, update_stats=True)
    for _ in range(30):  # power iteration converges
        _, upd = conv.apply(v, x, update_stats=True, mutable=["batch_stats"])
        v = {**v, **upd}
    w = v["params"]["layer_instance"]["kernel"]
    sigma = np.linalg.svd(np.asarray(w), compute_uv=False)[0]
    stats = jax.tree.leaves(v["batch_stats"])
    assert any(np.isclose(float(np.squeeze(s)), sigma, rtol=1e-3) for s in stats if s.size == 1)
    model = ResNetEstimator(arch="cat2dog")  # spectral norm on, as in the paper
    xs = jnp.zeros((1, 32, 32, 3))
    mv = model.init(jax.random.PRNGKey(0), xs, update_stats=True)
    _, fixed = model.apply(mv, xs, update_stats=False, mutable=["batch_stats"])
    same = jax.tree.map(
        lambda a, b: bool(np.array_equal(a, b)), fixed["batch_stats"], mv["batch_stats"]
    )
    assert all(jax.tree.leaves(same))  # a flow (update_stats=False) leaves the state alone


def test_spectral_norms_start_converged():
    """At initialisation σ is the kernel's top singular value (not a 20-iteration estimate),
    and the stored vector is a fixed point of the power iteration."""
    from fdrl_jax.models import converge_spectral_norms

    model = ResNetEstimator(arch="", stem=8, stages=((16, 1, 2),), spectral_norm=True)
    x = jnp.zeros((1, 8, 8, 3))
    v = converge_spectral_norms(dict(model.init(jax.random.PRNGKey(0), x)))
    kernel = v["params"]["layer1_0"]["conv1"]["kernel"]
    sigma = np.linalg.svd(np.asarray(kernel).reshape(-1, 16), compute_uv=False)[0]
    stats = v["batch_stats"]["layer1_0"]
    conv1 = next(w for w in stats.values() if "conv1/kernel/sigma" in w)
    np.testing.assert_allclose(conv1["conv1/kernel/sigma"], sigma, rtol=1e-5)
    _, again = model.apply(v, x, update_stats=True, mutable=["batch_stats"])
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(v["batch_stats"]), strict=True):
        np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-4, atol=1e-5)
