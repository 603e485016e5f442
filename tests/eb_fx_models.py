"""Models defined for the fx splitter's tests (no torchvision here): the shapes users bring.

- `TinyResNet`: torchvision-ResNet-like (stem, BasicBlocks with `out += identity` and one
  in-place ReLU module called twice, a strided block with a downsample, avgpool -> flatten -> fc);
- `TinyMobileNet`: MobileNet-like (depthwise convolutions, inverted residuals `x + conv(x)`,
  Hardswish, a `classifier` Sequential after a flatten);
- `ViewNet`: a flatten written as `x.view(x.size(0), -1)` before its classifier;
- `LongSkip`: a tensor from the stem is read after two splits (it must pass through a stage);
- `Untraceable`: data-dependent control flow inside a submodule.

The `*_branchy` functions are `module:function` factories for `edgebranchy train --model`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgebranchy.models.tv_compat import BasicBlock as TorchvisionBasicBlock


class BasicBlock(TorchvisionBasicBlock):
    """torchvision's block (`out += identity`, one in-place ReLU module called twice), its downsample built here."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(cin, cout, stride)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class TinyResNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 4, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 2 * width))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int = 2):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.Hardswish(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class TinyMobileNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(in_channels, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish()),
            InvertedResidual(8, 8, 1), InvertedResidual(8, 16, 2), InvertedResidual(16, 16, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(16, 32), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(32, num_classes))

    def forward(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


class ViewNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = F.relu(self.conv2(x))
        return self.fc(x.view(x.size(0), -1))


class LongSkip(nn.Module):
    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        y = torch.relu(self.a(s))
        y = torch.relu(self.b(y)) + s * 0.5
        return self.fc(y.mean(dim=(2, 3)))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        if x.sum() > 0:  # torch.fx cannot trace this
            return self.conv(x)
        return x


class Untraceable(nn.Module):
    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Sequential(nn.ReLU(), DataDependent())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x):
        return self.head(self.body(self.stem(x)))


# -- factories for `edgebranchy train --model eb_fx_models:...` ----------------------------------

def resnet_branchy(num_classes: int = 4, in_channels: int = 3, input_size: int = 32):
    """TinyResNet with exits inside layer1's second block (the skip input crosses) and after layer2.0."""
    from edgebranchy.models import from_model

    torch.manual_seed(1234)  # the same weights on every build: the user's "pretrained" model
    return from_model(TinyResNet(in_channels, num_classes), ["layer1.1.relu", "layer2.0"],
                      (in_channels, input_size, input_size), num_classes)


def resnet_weights(path: str, num_classes: int = 4, in_channels: int = 3, seed: int = 7) -> None:
    """Write a state_dict of a TinyResNet (other weights than resnet_branchy's) for --init-weights."""
    torch.manual_seed(seed)
    torch.save(TinyResNet(in_channels, num_classes).state_dict(), path)


def tv_resnet18_branchy(num_classes: int = 10, in_channels: int = 3, input_size: int = 32):
    """torchvision's ResNet-18 (edgebranchy.models.tv_compat) with exits after layer1 and layer2."""
    from edgebranchy.models import from_model
    from edgebranchy.models.tv_compat import resnet18

    return from_model(resnet18(num_classes=num_classes), ["layer1", "layer2"], (in_channels, input_size, input_size),
                      num_classes)


def tiny_resnet(num_classes: int = 4, in_channels: int = 3, input_size: int = 32):
    """The plain TinyResNet (no exits): what `edgebranchy plan eb_fx_models:tiny_resnet` places exits on."""
    torch.manual_seed(1234)
    return TinyResNet(in_channels, num_classes)
