"""Named datasets, the train/validation split and normalisation statistics.

Images are kept as uint8 (or small integer) arrays N x C x H x W; `Split.x_float`
applies `x / scale` then per-channel `(x - mean) / std`, the same transform the
artifact records for the device.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebranchy.errors import EdgeBranchyError

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DIGIT_CLASSES = [str(i) for i in range(10)]

DEFAULT_DIRS = {
    "fashion-mnist": ["/usr/share/datasets/fashion-mnist"],
    "mnist": ["/usr/share/datasets/mnist"],
    "cifar10": [],
}


@dataclass
class Split:
    """Images (N x C x H x W, raw values) and int64 labels."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def x_float(self, norm: "Normalization", index=None) -> np.ndarray:
        """Normalised float32 images; for a lazily decoded split (image folders) without `index`,
        a view that decodes and normalises the slices asked of it."""
        if index is None and not isinstance(self.x, np.ndarray):
            return _Normalized(self.x, norm)  # type: ignore[return-value]
        x = self.x if index is None else self.x[index]
        return norm.apply(x)


class _Normalized:
    """len() and slicing of a lazy image array, normalised on the fly (batches, never the whole split)."""

    def __init__(self, x, norm: "Normalization"):
        self.x, self.norm = x, norm
        self.shape = tuple(x.shape)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index) -> np.ndarray:
        return self.norm.apply(self.x[index])


@dataclass
class Normalization:
    scale: float
    mean: list[float]
    std: list[float]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Raw values -> normalised float32 NCHW."""
        x = np.asarray(x, dtype=np.float32) / np.float32(self.scale)
        m = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        s = np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return (x - m) / s

    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(float(d["scale"]), [float(v) for v in d["mean"]], [float(v) for v in d["std"]])


@dataclass
class DataBundle:
    """A dataset split three ways: train, validation (held out for calibration) and test."""

    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str]
    norm: Normalization
    source: str
    split_seed: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.train.x.shape[1:])  # type: ignore[return-value]

    def describe(self) -> dict:
        d = {"name": self.name, "source": self.source, "train": len(self.train), "val": len(self.val),
             "test": len(self.test), "split_seed": self.split_seed, "input_shape": list(self.input_shape)}
        if self.meta.get("image") is not None:  # how an image folder was read, to read it again the same way
            d["image"] = self.meta["image"]
        if self.meta.get("split") is not None:  # what reproduces the split (data/splits.py)
            d["split"] = dict(self.meta["split"])
        return d


def dataset_names() -> list[str]:
    return ["fashion-mnist", "mnist", "cifar10", "digits", "synthetic", "imagefolder"]


def _resolve_dir(name: str, data_dir: str | os.PathLike | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("EDGEBRANCHY_DATA")
    cands = ([Path(env) / name] if env else []) + [Path(p) for p in DEFAULT_DIRS.get(name, [])]
    for c in cands:
        if c.is_dir():
            return c
    hint = {
        "fashion-mnist": "install it with `apt-get install dataset-fashion-mnist` (Debian) or pass `data_dir` "
                         "with the four *-ubyte(.gz) files",
        "mnist": "pass `data_dir` with train-images-idx3-ubyte(.gz) and the other three MNIST files",
        "cifar10": "pass `data_dir` with the CIFAR-10 python batches (cifar-10-batches-py)",
    }[name]
    raise EdgeBranchyError(f"dataset {name!r} not found; {hint}")


def split_train_val(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic permutation split of range(n): (train_index, val_index)."""
    if not 0 < val_size < n:
        raise EdgeBranchyError(f"validation size {val_size} must be between 1 and {n - 1}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


def normalization_of(x: np.ndarray, scale: float) -> Normalization:
    """Per-channel mean and std of raw images after dividing by scale."""
    xs = x.astype(np.float64) / scale
    mean = xs.mean(axis=(0, 2, 3))
    std = xs.std(axis=(0, 2, 3))
    std = np.where(std < 1e-8, 1.0, std)
    return Normalization(scale, mean.tolist(), std.tolist())


def _digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise EdgeBranchyError("dataset 'digits' needs scikit-learn (pip install scikit-learn)") from None
    d = load_digits()
    x = d.images.astype(np.uint8)[:, None]  # values 0..16
    y = d.target.astype(np.int64)
    idx_tr, idx_te = split_train_val(len(y), 360, seed=12345)  # a fixed test split
    return x[idx_tr], y[idx_tr], x[idx_te], y[idx_te]


def synthetic(n_train: int = 2000, n_test: int = 500, shape=(1, 28, 28), classes: int = 10, seed: int = 0):
    """A learnable synthetic set: one random template per class plus noise, uint8."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, size=(classes,) + tuple(shape))

    def make(n):
        y = rng.integers(0, classes, size=n)
        x = 0.6 * templates[y] + 0.4 * rng.uniform(0, 255, size=(n,) + tuple(shape))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return xtr, ytr, xte, yte


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, val_size: int | None = None,
                 seed: int = 0, synthetic_shape=(1, 28, 28), limit: int | None = None,
                 image: dict | None = None) -> DataBundle:
    """Load a named dataset split into train / validation / test with normalisation from the train split.

    `val_size` defaults to 5,000 for the 60k/50k sets and 10% otherwise.
    `limit` keeps only the first `limit` training and test samples (quick runs).
    `image`: options of the image folder reader (data/imagefolder.py), for "imagefolder" only.
    """
    if name == "imagefolder":
        from edgebranchy.data.imagefolder import load_imagefolder

        return load_imagefolder(data_dir, val_size, seed, limit, image)
    if image:
        raise EdgeBranchyError(f"image options ({', '.join(sorted(image))}) apply to `dataset` imagefolder only")
    if name in ("fashion-mnist", "mnist", "cifar10"):
        return _load_files(name, _resolve_dir(name, data_dir), val_size, seed, limit)
    if name == "digits":
        xtr, ytr, xte, yte = _digits()
        scale, source, classes = 16.0, "sklearn.datasets.load_digits (UCI, 8x8)", DIGIT_CLASSES
    elif name == "synthetic":
        xtr, ytr, xte, yte = synthetic(shape=synthetic_shape, seed=seed)
        scale, source, classes = 255.0, f"synthetic(seed={seed})", [f"class{i}" for i in range(10)]
    else:
        raise EdgeBranchyError(f"unknown dataset {name!r}; choose one of {', '.join(dataset_names())}")
    from edgebranchy.data.splits import array_digest

    digest = array_digest(xtr, ytr, xte, yte)  # decoded in memory: the arrays are the source
    return _split(name, xtr, ytr, xte, yte, scale, source, classes, val_size, seed, limit, digest)


_ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "scale", "mean", "std", "val_index")


def _source_files(name: str, d: Path) -> list[Path]:
    """The files a file-based dataset is decoded from (what the cache key hashes)."""
    if name == "cifar10":
        if (d / "cifar-10-batches-py").is_dir():
            d = d / "cifar-10-batches-py"
        return sorted(d.glob("data_batch_*")) + [d / "test_batch"]
    out = []
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            stem = f"{prefix}-{kind}-ubyte"
            out.append(d / f"{stem}.gz" if (d / f"{stem}.gz").exists() else d / stem)
    return out


def _load_files(name: str, d: Path, val_size, seed: int, limit) -> DataBundle:
    """MNIST, Fashion-MNIST or CIFAR-10 from `d`, through the decoded-data cache (data/cache.py)."""
    from edgebranchy.data import cache
    from edgebranchy.data.splits import index_digest, split_block
    from edgebranchy.util.talk import say

    classes = {"fashion-mnist": FASHION_CLASSES, "mnist": DIGIT_CLASSES, "cifar10": CIFAR10_CLASSES}[name]
    source = str(d)
    digest = cache.files_digest(_source_files(name, d)) if d.is_dir() else None
    key = None
    if cache.cache_dir() is not None:
        key = cache.entry_key(name, digest, {"val_size": val_size, "seed": seed, "limit": limit})
    hit = cache.load(key, _ARRAYS)
    if hit is not None:
        say(f"loading {name} from {d} (decoded copy in the cache)")
        norm = Normalization(float(hit["scale"]), hit["mean"].tolist(), hit["std"].tolist())
        split = split_block(limit, len(hit["y_val"]), seed, digest, index_digest(hit["val_index"]))
        return DataBundle(name, Split(hit["x_train"], hit["y_train"]), Split(hit["x_val"], hit["y_val"]),
                          Split(hit["x_test"], hit["y_test"]), list(classes), norm, source, split_seed=seed,
                          meta={"split": split, "val_index": hit["val_index"]})
    if d.is_dir():  # a missing folder: the reader's one-line error is all there is to say
        say(f"loading {name} from {d} (decoding" + (", cached for next time)" if key else ")"))
    if name == "cifar10":
        from edgebranchy.data.cifar import load_cifar_dir

        xtr, ytr, xte, yte = load_cifar_dir(d)
    else:
        from edgebranchy.data.idx import load_idx_dir

        xtr, ytr, xte, yte = load_idx_dir(d)
    b = _split(name, xtr, ytr, xte, yte, 255.0, source, classes, val_size, seed, limit, digest)
    cache.store(key, {"x_train": b.train.x, "y_train": b.train.y, "x_val": b.val.x, "y_val": b.val.y,
                      "x_test": b.test.x, "y_test": b.test.y, "scale": np.float64(b.norm.scale),
                      "mean": np.asarray(b.norm.mean, dtype=np.float64),
                      "std": np.asarray(b.norm.std, dtype=np.float64), "val_index": b.meta["val_index"]})
    return b


def _split(name, xtr, ytr, xte, yte, scale, source, classes, val_size, seed, limit, digest) -> DataBundle:
    """Labels checked, `limit` applied, train split into train + validation, normalisation from train;
    `digest` is the source's sha256 (the split record, data/splits.py)."""
    from edgebranchy.data.splits import index_digest, split_block

    for part, labels in (("training", ytr), ("test", yte)):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise EdgeBranchyError(f"{name} ({source}): {part} labels outside 0..{len(classes) - 1} "
                                   f"(found {labels.min()}..{labels.max()})")
    if limit is not None:
        if limit < 1:
            raise EdgeBranchyError(f"limit must be at least 1, got {limit}")
        xtr, ytr, xte, yte = xtr[:limit], ytr[:limit], xte[:limit], yte[:limit]
    if val_size is None:
        val_size = 5000 if len(ytr) >= 50000 else max(1, len(ytr) // 10)
    tr, va = split_train_val(len(ytr), val_size, seed)
    norm = normalization_of(xtr[tr], scale)
    meta = {"split": split_block(limit, val_size, seed, digest, index_digest(va)), "val_index": va}
    return DataBundle(name, Split(xtr[tr], ytr[tr]), Split(xtr[va], ytr[va]), Split(xte, yte), list(classes),
                      norm, source, split_seed=seed, meta=meta)
