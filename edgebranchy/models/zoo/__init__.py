"""The paper's networks by name."""
from edgebranchy.models.zoo.alexnet import b_alexnet
from edgebranchy.models.zoo.lenet import b_lenet
from edgebranchy.models.zoo.resnet import b_resnet

__all__ = ["b_alexnet", "b_lenet", "b_resnet"]
