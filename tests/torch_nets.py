"""PyTorch references for the paper's two external networks, written here because the tests
cannot import torchvision (PyPI's build does not import beside the CPU torch they use) nor the
robustness library: module and parameter names follow theirs, so their state dicts load.

- `inception_module(torch)`: `torchvision.models.inception` (Inception3, InceptionA-E,
  InceptionAux, BasicConv2d), forwards included; `paper_pool3` runs it as the paper's FID code
  does. pytorch-fid subclasses its InceptionA/C/E, so it also stands in for torchvision there.
- `robustness_resnet50(torch, ...)`: `robustness.cifar_models.ResNet50` inside an
  `AttackerModel`-shaped wrapper (normalizer, model, attacker.model, attacker.normalize).
"""

from __future__ import annotations

import types


def inception_module(torch) -> types.ModuleType:
    """A module shaped like `torchvision.models.inception`."""
    nn, F = torch.nn, torch.nn.functional

    class BasicConv2d(nn.Module):
        def __init__(self, cin, cout, **kw):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    def convs(module, specs):
        for name, cin, cout, kw in specs:
            setattr(module, name, BasicConv2d(cin, cout, **kw))

    def avg3(x):  # count_include_pad=True, F.avg_pool2d's default
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)

    k1, k3 = dict(kernel_size=1), dict(kernel_size=3)
    p1, s2 = dict(kernel_size=3, padding=1), dict(kernel_size=3, stride=2)
    row7, col7 = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
    row3, col3 = dict(kernel_size=(1, 3), padding=(0, 1)), dict(kernel_size=(3, 1), padding=(1, 0))

    class InceptionA(nn.Module):
        def __init__(self, cin, pool_features):
            super().__init__()
            convs(self, [("branch1x1", cin, 64, k1), ("branch5x5_1", cin, 48, k1)])
            convs(self, [("branch5x5_2", 48, 64, dict(kernel_size=5, padding=2))])
            convs(self, [("branch3x3dbl_1", cin, 64, k1), ("branch3x3dbl_2", 64, 96, p1)])
            convs(self, [("branch3x3dbl_3", 96, 96, p1), ("branch_pool", cin, pool_features, k1)])

        def forward(self, x):
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([self.branch1x1(x), b5, bd, self.branch_pool(avg3(x))], 1)

    class InceptionB(nn.Module):
        def __init__(self, cin):
            super().__init__()
            convs(self, [("branch3x3", cin, 384, s2), ("branch3x3dbl_1", cin, 64, k1)])
            convs(self, [("branch3x3dbl_2", 64, 96, p1), ("branch3x3dbl_3", 96, 96, s2)])

        def forward(self, x):
            bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([self.branch3x3(x), bd, F.max_pool2d(x, 3, 2)], 1)

    class InceptionC(nn.Module):
        def __init__(self, cin, channels_7x7):
            super().__init__()
            c7 = channels_7x7
            convs(self, [("branch1x1", cin, 192, k1), ("branch7x7_1", cin, c7, k1)])
            convs(self, [("branch7x7_2", c7, c7, row7), ("branch7x7_3", c7, 192, col7)])
            convs(self, [("branch7x7dbl_1", cin, c7, k1), ("branch7x7dbl_2", c7, c7, col7)])
            convs(self, [("branch7x7dbl_3", c7, c7, row7), ("branch7x7dbl_4", c7, c7, col7)])
            convs(self, [("branch7x7dbl_5", c7, 192, row7), ("branch_pool", cin, 192, k1)])

        def forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            bd = self.branch7x7dbl_1(x)
            for i in range(2, 6):
                bd = getattr(self, f"branch7x7dbl_{i}")(bd)
            return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(avg3(x))], 1)

    class InceptionD(nn.Module):
        def __init__(self, cin):
            super().__init__()
            convs(self, [("branch3x3_1", cin, 192, k1), ("branch3x3_2", 192, 320, s2)])
            convs(self, [("branch7x7x3_1", cin, 192, k1), ("branch7x7x3_2", 192, 192, row7)])
            convs(self, [("branch7x7x3_3", 192, 192, col7), ("branch7x7x3_4", 192, 192, s2)])

        def forward(self, x):
            b3 = self.branch3x3_2(self.branch3x3_1(x))
            b7 = self.branch7x7x3_1(x)
            for i in range(2, 5):
                b7 = getattr(self, f"branch7x7x3_{i}")(b7)
            return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)

    class InceptionE(nn.Module):
        def __init__(self, cin):
            super().__init__()
            convs(self, [("branch1x1", cin, 320, k1), ("branch3x3_1", cin, 384, k1)])
            convs(self, [("branch3x3_2a", 384, 384, row3), ("branch3x3_2b", 384, 384, col3)])
            convs(self, [("branch3x3dbl_1", cin, 448, k1), ("branch3x3dbl_2", 448, 384, p1)])
            convs(self, [("branch3x3dbl_3a", 384, 384, row3), ("branch3x3dbl_3b", 384, 384, col3)])
            convs(self, [("branch_pool", cin, 192, k1)])

        def forward(self, x):
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
            return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(avg3(x))], 1)

    class InceptionAux(nn.Module):  # parameters only: the features never reach it
        def __init__(self, cin, num_classes):
            super().__init__()
            convs(self, [("conv0", cin, 128, k1), ("conv1", 128, 768, dict(kernel_size=5))])
            self.fc = nn.Linear(768, num_classes)

    class Inception3(nn.Module):
        def __init__(self, num_classes=1000, aux_logits=True, **_):
            super().__init__()
            convs(self, [("Conv2d_1a_3x3", 3, 32, s2), ("Conv2d_2a_3x3", 32, 32, k3)])
            convs(self, [("Conv2d_2b_3x3", 32, 64, p1), ("Conv2d_3b_1x1", 64, 80, k1)])
            convs(self, [("Conv2d_4a_3x3", 80, 192, k3)])
            self.Mixed_5b, self.Mixed_5c = InceptionA(192, 32), InceptionA(256, 64)
            self.Mixed_5d, self.Mixed_6a = InceptionA(288, 64), InceptionB(288)
            self.Mixed_6b, self.Mixed_6c = InceptionC(768, 128), InceptionC(768, 160)
            self.Mixed_6d, self.Mixed_6e = InceptionC(768, 160), InceptionC(768, 192)
            if aux_logits:
                self.AuxLogits = InceptionAux(768, num_classes)
            self.Mixed_7a, self.Mixed_7b = InceptionD(768), InceptionE(1280)
            self.Mixed_7c = InceptionE(2048)
            self.fc = nn.Linear(2048, num_classes)

        def blocks(self, x):
            """Stem to Mixed_7c and the global average pool: the pool3 features."""
            x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
            x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
            x = F.max_pool2d(x, 3, 2)
            for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
                x = getattr(self, f"Mixed_{name}")(x)
            return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)

        def paper_pool3(self, images01):
            """The paper's FID features of NCHW images in [0, 1]: bilinear resize to 299 (no
            antialiasing), 2x − 1, then the blocks (`transform_input` is never applied)."""
            x = F.interpolate(images01, size=(299, 299), mode="bilinear", align_corners=False)
            return self.blocks(2 * x - 1)

    module = types.ModuleType("torchvision.models.inception")
    for cls in (BasicConv2d, InceptionA, InceptionB, InceptionC, InceptionD, InceptionE):
        setattr(module, cls.__name__, cls)
    module.InceptionAux, module.Inception3 = InceptionAux, Inception3
    return module


def randomize(torch, net, seed: int = 0) -> None:
    """Random convs, linears and BatchNorms (running statistics too), so every one matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))


def robustness_resnet50(torch, num_classes: int = 10, wm: float = 1.0):
    """`AttackerModel(ResNet50(num_classes, wm=wm), CIFAR)`: the state-dict layout of the
    robustness library's checkpoints (before DataParallel's 'module.' prefix). Calling it on
    NCHW images in [0, 1] gives the logits, as `model(x)[0]` does in the library."""
    nn, F = torch.nn, torch.nn.functional

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, planes, stride):
            super().__init__()
            out = 4 * planes
            self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3, self.bn3 = nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != out:
                conv = nn.Conv2d(cin, out, 1, stride, bias=False)
                self.shortcut = nn.Sequential(conv, nn.BatchNorm2d(out))

        def forward(self, x):
            h = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
            return F.relu(self.bn3(self.conv3(h)) + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            widths = [int(w * wm) for w in (64, 128, 256, 512)]
            self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            cin = widths[0]
            for i, (planes, n) in enumerate(zip(widths, (3, 4, 6, 3), strict=True)):
                layer = []
                for j in range(n):
                    layer.append(Bottleneck(cin, planes, 1 if i == 0 or j else 2))
                    cin = 4 * planes
                setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            self.linear = nn.Linear(4 * widths[3], num_classes)

        def forward(self, x):
            h = F.relu(self.bn1(self.conv1(x)))
            h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
            return self.linear(F.avg_pool2d(h, 4).flatten(1))

    class InputNormalize(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("new_mean", torch.tensor([0.4914, 0.4822, 0.4465])[:, None, None])
            self.register_buffer("new_std", torch.tensor([0.2023, 0.1994, 0.2010])[:, None, None])

        def forward(self, x):
            return (torch.clamp(x, 0, 1) - self.new_mean) / self.new_std

    class Attacker(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.normalize, self.model = InputNormalize(), model

    class AttackerModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.normalizer, self.model = InputNormalize(), ResNet()
            self.attacker = Attacker(self.model)

        def forward(self, x):
            return self.model(self.normalizer(x))

    return AttackerModel()
