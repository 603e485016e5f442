"""ResNet-18 and MobileNetV2 as torchvision defines them, for machines without torchvision.

torchvision cannot be installed next to the CPU build of torch from the registries this project
reaches (PyPI's torchvision wheels for x86_64 pair with the CUDA torch build; the CPU pairs live
on download.pytorch.org). These two definitions are written here from torchvision's documented
architectures so that code written for torchvision runs unchanged:

- the module names, classes and state-dict keys (and shapes) are torchvision's, so a
  `torch.save(model.state_dict(), FILE)` made with torchvision loads here (`--init-weights`) and
  the other way round;
- the forward pass is the same computation (tested: identical logits under the same weights),
  so `from_model`'s split names (`layer2`, `layer3.1.relu_1`, `features.6`) are the same;
- the initialisation follows torchvision's defaults (Kaiming-normal fan-out convolutions, batch
  norm at 1 / 0; MobileNetV2's classifier N(0, 0.01)).

Plain nn.Modules (not BranchyNets); no pretrained weights. The tests compare them with fixtures
recorded from torchvision 0.29.1 (tests/models/fixtures/).
"""
from __future__ import annotations

import torch
from torch import nn

from edgebranchy.errors import EdgeBranchyError

__all__ = ["BasicBlock", "Conv2dNormActivation", "InvertedResidual", "MobileNetV2", "ResNet", "mobilenet_v2",
           "resnet18"]


def _no_weights(name: str, weights) -> None:
    if weights is not None:
        raise EdgeBranchyError(f"edgebranchy.models.tv_compat.{name} has no pretrained weights (got weights="
                               f"{weights!r}); build it with weights=None and load a state_dict "
                               "(torch.save(model.state_dict(), FILE) from torchvision fits it)")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, added to the block's input (1x1 downsample when the shape changes)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet with BasicBlocks: a 7x7 stem and max pool, four stages, global average pool, fc."""

    def __init__(self, layers: tuple[int, int, int, int] = (2, 2, 2, 2), num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(64, layers[0], 1)
        self.layer2 = self._stage(128, layers[1], 2)
        self.layer3 = self._stage(256, layers[2], 2)
        self.layer4 = self._stage(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():  # nn.Linear keeps PyTorch's default initialisation, as in torchvision
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        out = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        out += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(*, weights=None, num_classes: int = 1000) -> ResNet:
    """ResNet-18 with torchvision's module names, state-dict keys and default initialisation."""
    _no_weights("resnet18", weights)
    return ResNet((2, 2, 2, 2), num_classes=num_classes)


class Conv2dNormActivation(nn.Sequential):
    """Convolution ("0"), batch norm ("1"), ReLU6 ("2"); padding keeps the size at stride 1."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))
        self.out_channels = cout


class InvertedResidual(nn.Module):
    """1x1 expansion (omitted at ratio 1), 3x3 depthwise, linear 1x1 projection; added to the input when
    the shape is kept."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = [Conv2dNormActivation(inp, hidden, kernel_size=1)] if expand_ratio != 1 else []
        layers += [Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


#: (expansion t, output channels c, repeats n, first stride s) of MobileNetV2's bottleneck stages
MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                        (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 at width 1.0: `features` (stem, 17 inverted residuals, 1x1 to 1280 channels),
    global average pool, `classifier` (dropout, linear)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        feats: list[nn.Module] = [Conv2dNormActivation(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in MOBILENET_V2_SETTING:
            for i in range(n):
                feats.append(InvertedResidual(cin, c, s if i == 0 else 1, expand_ratio=t))
                cin = c
        feats.append(Conv2dNormActivation(cin, 1280, kernel_size=1))
        self.last_channel = 1280
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(*, weights=None, num_classes: int = 1000, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 (width 1.0) with torchvision's module names, state-dict keys and default initialisation."""
    _no_weights("mobilenet_v2", weights)
    return MobileNetV2(num_classes=num_classes, dropout=dropout)
