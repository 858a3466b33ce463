"""Our layers and the paper's nets compute what the reference's PyTorch ones compute.

torch (CPU) is installed in CI for these and the FID parity tests; without it they skip.
The torch nets are written from docs/networks.md in the reference's layout
(`interop.reference_nets`);
weights cross over through `interop.state_dict`, the same mapping checkpoint import uses.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fdrl_jax.interop import reference_nets, state_dict  # noqa: E402
from fdrl_jax.models import MLP, ResNetEstimator, converge_spectral_norms, layers  # noqa: E402
from fdrl_jax.models.resnet import BasicBlock, SelfAttention  # noqa: E402


def max_rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def nhwc(t) -> np.ndarray:
    return np.transpose(t.detach().numpy(), (0, 2, 3, 1))


def nchw(x: np.ndarray):
    return torch.tensor(np.transpose(x, (0, 3, 1, 2)))


def images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def state(module) -> dict:
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (1, 2)])
def test_conv_pads_like_torch_padding_1(kernel, stride):
    x = images((2, 9, 10, 5))  # odd and even sizes: "SAME" would differ at stride 2
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(5, 7, kernel, stride, kernel // 2, bias=False)
    ours = layers.conv(7, kernel, 5, stride)
    kernel_hwio = np.transpose(ref.weight.detach().numpy(), (2, 3, 1, 0))
    out = ours.apply({"params": {"kernel": kernel_hwio}}, jnp.asarray(x))
    expected = nhwc(ref(nchw(x)))
    assert out.shape == expected.shape
    assert max_rel_err(out, expected) <= 1e-5


@pytest.mark.parametrize("cin,cout,stride", [(8, 16, 2), (16, 16, 1)])
def test_basic_block_matches_torch(cin, cout, stride):
    x = images((2, 8, 8, cin))
    torch.manual_seed(1)
    ref = reference_nets.BasicBlock(cin, cout, stride)
    ours = BasicBlock(cout, stride)
    template = jax.eval_shape(lambda: ours.init(jax.random.PRNGKey(0), jnp.asarray(x)))
    variables = state_dict.from_state_dict(state(ref), template)
    assert ("shortcut_conv" in variables["params"]) == (stride != 1 or cin != cout)
    out = ours.apply(variables, jnp.asarray(x))
    assert max_rel_err(out, nhwc(ref(nchw(x)))) <= 1e-5


def test_self_attention_matches_torch():
    x = images((2, 6, 5, 16))
    torch.manual_seed(2)
    ref = reference_nets.SelfAttention(16)
    with torch.no_grad():
        ref.gamma.fill_(0.7)  # γ starts at 0 (the identity); test the attention path too
    ours = SelfAttention()
    template = jax.eval_shape(lambda: ours.init(jax.random.PRNGKey(0), jnp.asarray(x)))
    variables = state_dict.from_state_dict(state(ref), template)
    flat = jax.tree.leaves(variables["params"])
    assert sum(v.size for v in flat) == sum(p.numel() for p in ref.parameters())  # biases too
    out = ours.apply(variables, jnp.asarray(x))
    assert max_rel_err(out, nhwc(ref(nchw(x)))) <= 1e-5


# (in, out, kernel size; 0 = dense, bias): the nets' layer shapes
LAYERS = [
    (3, 128, 3, False),  # stem
    (128, 256, 3, False),  # strided 3×3
    (128, 256, 1, False),  # shortcut
    (128, 16, 1, True),  # attention query / key / value
    (16, 128, 1, True),  # attention output
    (256, 1, 0, True),  # head
    (2, 64, 0, True),  # MLP
    (64, 64, 0, True),
]


def _layer_pair(cin, cout, k, bias):
    if k == 0:
        return layers.dense(cout, cin), torch.nn.Linear(cin, cout), (1, cin)
    ours = layers.conv(cout, k, cin, use_bias=bias)
    return ours, torch.nn.Conv2d(cin, cout, k, bias=bias), (1, 4, 4, cin)


@pytest.mark.parametrize("cin,cout,k,bias", LAYERS)
def test_initialisation_is_pytorchs_default(cin, cout, k, bias):
    """Weights and biases U(±1/√fan_in): the same range and spread as torch's own init of the
    same layer (pooled over seeds, so small layers are compared too)."""
    ours, ref = {"kernel": [], "bias": []}, {"kernel": [], "bias": []}
    for seed in range(20):
        layer, _, in_shape = _layer_pair(cin, cout, k, bias)
        v = layer.init(jax.random.PRNGKey(seed), jnp.zeros(in_shape))["params"]
        torch.manual_seed(seed)
        _, torch_layer, _ = _layer_pair(cin, cout, k, bias)
        ours["kernel"].append(np.asarray(v["kernel"]).ravel())
        ref["kernel"].append(torch_layer.weight.detach().numpy().ravel())
        assert ("bias" in v) == bias
        if bias:
            ours["bias"].append(np.asarray(v["bias"]).ravel())
            ref["bias"].append(torch_layer.bias.detach().numpy().ravel())
    bound = 1.0 / np.sqrt(cin * max(k, 1) ** 2)  # 1/√fan_in
    for name in ("kernel", "bias") if bias else ("kernel",):
        a, b = np.concatenate(ours[name]), np.concatenate(ref[name])
        assert np.abs(a).max() <= bound and np.abs(b).max() <= bound
        assert np.abs(a).max() >= 0.9 * bound  # uniform over the whole range
        np.testing.assert_allclose(a.std(), b.std(), rtol=0.1)
        np.testing.assert_allclose(a.std(), bound / np.sqrt(3), rtol=0.1)
        assert abs(a.mean()) < 0.1 * bound


def test_flax_initialisation_stays_available():
    """param_init = "flax": lecun-normal kernels (std 1/√fan_in, √3× torch's) and zero biases."""
    v = MLP(hidden=256, param_init="flax").init(jax.random.PRNGKey(0), jnp.zeros((1, 256)))
    kernel, bias = v["params"]["Dense_1"]["kernel"], v["params"]["Dense_1"]["bias"]
    np.testing.assert_allclose(np.std(kernel), 1 / 16, rtol=0.05)
    assert not np.any(bias)
    with pytest.raises(ValueError, match="param_init"):
        MLP(param_init="xavier").init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))


def _model_cfg(arch, sn):
    return ml_collections.ConfigDict(
        {"name": "resnet", "arch": arch, "stem": None, "stages": None,
         "attention_after": None, "spectral_norm": sn}
    )  # fmt: skip


def _exact_singular_vectors(net) -> None:
    for module in net.modules():
        if hasattr(module, "weight_orig"):
            w = module.weight_orig.detach().reshape(module.weight_orig.shape[0], -1).double()
            u, _, vh = torch.linalg.svd(w, full_matrices=False)
            module.weight_u.copy_(u[:, 0].float())
            module.weight_v.copy_(vh[0].float())


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch,sn", [("cifar10", False), ("cifar10", True), ("celeba64", False),
                ("church128", False), ("cat2dog", True)],
)  # fmt: skip
def test_spec_nets_match_torch_and_start_with_its_gradient_scale(arch, sn):
    """Same weights: same outputs and input gradients (what the flow follows). Fresh inits:
    input gradients of the same size, so the first flows move particles as far."""
    x = images((2, 32, 32, 3))  # every net of models.ARCHS runs at any size; 32² keeps this fast
    ours = ResNetEstimator(arch=arch, spectral_norm=sn)
    # compiled once each (run op by op, a full-size net's gradient takes seconds to dispatch)
    init = jax.jit(lambda key: converge_spectral_norms(dict(ours.init(key, jnp.asarray(x[:1])))))
    apply = jax.jit(ours.apply)
    input_grad = jax.jit(lambda v, z: jax.grad(lambda z: jnp.sum(ours.apply(v, z)))(z))
    template = jax.eval_shape(init, jax.random.PRNGKey(0))
    norms = {"torch": [], "ours": []}
    for seed in range(2):
        torch.manual_seed(seed)
        ref = reference_nets.build_reference_net(_model_cfg(arch, sn), (32, 32, 3))
        if sn:
            _exact_singular_vectors(ref)
        ref.eval()
        if seed == 0 and arch == "cat2dog":
            with torch.no_grad():
                ref.self_attn_module.gamma.fill_(0.5)
        xt = nchw(x).requires_grad_(True)
        out_t = ref(xt)
        (g_t,) = torch.autograd.grad(out_t.sum(), xt)
        norms["torch"].append(float(g_t.flatten(1).norm(dim=1).mean()))
        if seed == 0:
            v = state_dict.from_state_dict(state(ref), template)
            assert max_rel_err(apply(v, jnp.asarray(x)), out_t.detach().numpy()) <= 1e-4
            assert max_rel_err(input_grad(v, jnp.asarray(x)), nhwc(g_t)) <= 1e-2
        g = input_grad(init(jax.random.PRNGKey(seed)), jnp.asarray(x))
        norms["ours"].append(float(jnp.mean(jnp.linalg.norm(g.reshape(2, -1), axis=1))))
    ratio = np.mean(norms["ours"]) / np.mean(norms["torch"])
    assert 0.5 <= ratio <= 2.0, (norms, ratio)


@pytest.mark.slow
def test_state_dict_round_trip_and_mismatch_errors():
    model = ResNetEstimator(arch="cat2dog")  # spectral norm and attention
    v = converge_spectral_norms(dict(model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))))
    sd = state_dict.to_state_dict(v)
    assert {"self_attn_module.gamma", "linear.weight_orig", "layer1.0.conv1.weight_u"} <= set(sd)
    back = state_dict.from_state_dict(sd, v)
    for a, b in zip(jax.tree.leaves(back["params"]), jax.tree.leaves(v["params"]), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(
        jax.tree.leaves(back["batch_stats"]), jax.tree.leaves(v["batch_stats"]), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    bad = dict(sd)
    del bad["linear.bias"]
    bad["extra.weight"] = np.zeros(1)
    with pytest.raises(
        ValueError,
        match=r"missing keys \['linear.bias'\].*unexpected keys \['extra.weight'\].*Expected keys",
    ):
        state_dict.from_state_dict(bad, v)
    mlp = MLP()
    mv = mlp.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    assert sorted(state_dict.to_state_dict(mv)) == sorted(
        f"mlp.{i}.{w}" for i in (0, 2, 4, 6, 8) for w in ("weight", "bias")
    )
