"""Datasets as numpy arrays (no torch needed): readers, splits and normalisation."""
from edgebranchy.data.datasets import DataBundle, Split, dataset_names, load_dataset

__all__ = ["DataBundle", "Split", "dataset_names", "load_dataset"]
