"""Image folders: DIR/<class>/*.{jpg,png,...} (or DIR/train, DIR/val, DIR/test), decoded lazily with Pillow.

The index holds paths and labels only; pixels are decoded when a batch asks for
them (with a bounded cache of decoded images), so a folder larger than memory
trains. Every image goes through `load_image`: RGB (or L), the shorter side
resized to `size` (bilinear), a centre crop, uint8 C x H x W. The artifact's
`input` block records the same settings, and `edgebranchy predict --images`
applies them on the device. A file that is not an image, or is damaged, is
named in one line and skipped, or refused with `strict`.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
SPLITS = ("train", "val", "test")
TEST_SEED = 12345          # the carved test split does not move with --seed (as for digits)
NORM_SAMPLES = 512         # images decoded to estimate the training mean and std
MAX_NAMED = 20             # bad files named one per line, then a count


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise EdgeBranchyError("image folders need Pillow (pip install pillow, or edgebranchy[data])") from None
    return Image


@dataclass(frozen=True)
class ImageSpec:
    """How a file becomes the network's raw input: colour mode, resize of the shorter side, centre crop."""

    size: int = 224
    crop: tuple[int, int] = (224, 224)
    color: str = "RGB"

    def __post_init__(self):
        if self.color not in ("RGB", "L"):
            raise EdgeBranchyError(f"image colour mode must be RGB or L, got {self.color!r}")
        if self.size < 1 or min(self.crop) < 1 or max(self.crop) > self.size:
            raise EdgeBranchyError(f"image size {self.size} and crop {list(self.crop)}: need 1 <= crop <= size")

    @property
    def channels(self) -> int:
        return 3 if self.color == "RGB" else 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.crop)

    def to_input(self) -> dict:
        """The keys the manifest's `input` block records (beside shape, scale, mean and std)."""
        return {"resize": self.size, "crop": list(self.crop), "color": self.color, "interpolation": "bilinear"}

    @classmethod
    def from_input(cls, d: dict) -> "ImageSpec":
        """From a manifest `input` block (or a checkpoint's); refuses blocks without image settings."""
        if "resize" not in d or "crop" not in d:
            raise EdgeBranchyError("this artifact was not trained on an image folder: its input block records no "
                                   "resize/crop, so image files cannot be prepared for it")
        return cls(int(d["resize"]), (int(d["crop"][0]), int(d["crop"][1])), str(d.get("color", "RGB")))

    @classmethod
    def make(cls, size: int | None = None, crop: int | None = None, color: str = "RGB") -> "ImageSpec":
        size = 224 if size is None else int(size)
        c = size if crop is None else int(crop)
        return cls(size, (c, c), color)


class BadImage(Exception):
    """A file Pillow cannot read as an image (internal: callers name it and skip or refuse)."""


def load_image(path: str | os.PathLike, spec: ImageSpec) -> np.ndarray:
    """Decode, resize (shorter side to spec.size, bilinear), centre-crop: uint8 C x H x W."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            im = im.convert(spec.color)
            w, h = im.size
            nw, nh = (spec.size, int(spec.size * h / w)) if w <= h else (int(spec.size * w / h), spec.size)
            if (nw, nh) != (w, h):
                im = im.resize((nw, nh), Image.BILINEAR)
            ch, cw = spec.crop
            top, left = int(round((nh - ch) / 2.0)), int(round((nw - cw) / 2.0))
            im = im.crop((left, top, left + cw, top + ch))
            a = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadImage(f"{path}: cannot decode ({(str(e).splitlines() or [type(e).__name__])[0][:120]})") from None
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def check_image(path: Path) -> str | None:
    """Why `path` is not a usable image (None if it looks fine): a quick check, no full decode."""
    if path.suffix.lower() not in IMAGE_EXTS:
        return f"not an image file (extension {path.suffix or 'none'})"
    Image = _pil()
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()  # PNG: chunk CRCs to the end; others: the header
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for damaged files
        return f"damaged or not an image ({(str(e).splitlines() or [type(e).__name__])[0][:100]})"
    if fmt == "JPEG":
        with open(path, "rb") as f:  # a cut-off JPEG opens fine but lacks its end-of-image marker
            f.seek(max(0, path.stat().st_size - 64))
            if b"\xff\xd9" not in f.read():
                return "damaged JPEG (truncated: no end-of-image marker)"
    return None


class ImageArray:
    """N images as a lazy uint8 array N x C x H x W: indexing decodes (with a bounded cache)."""

    def __init__(self, paths: Sequence[str], spec: ImageSpec, cache_bytes: int = 256 << 20):
        self.paths = list(paths)
        self.spec = spec
        self.dtype = np.dtype(np.uint8)
        self.cache_bytes = cache_bytes
        self._cache: dict[int, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), *self.spec.shape)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index) -> "ImageArray":
        """The images at `index` (slice or integer array) as another lazy array (nothing decoded)."""
        sel = self.paths[index] if isinstance(index, slice) else [self.paths[int(i)] for i in np.asarray(index)]
        return ImageArray(sel, self.spec, self.cache_bytes)

    def _one(self, i: int) -> np.ndarray:
        a = self._cache.get(i)
        if a is None:
            try:
                a = load_image(self.paths[i], self.spec)
            except BadImage as e:
                raise EdgeBranchyError(f"{e}; it passed the check when the folder was read: remove the file") \
                    from None
            if (len(self._cache) + 1) * a.nbytes <= self.cache_bytes:
                self._cache[i] = a
        return a

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self._one(int(index))
        idx = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        out = np.empty((len(idx), *self.spec.shape), dtype=np.uint8)
        for j, i in enumerate(idx.tolist()):
            out[j] = self._one(i)
        return out

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _report(bad: list[tuple[Path, str]], strict: bool, log: Callable[[str], None]) -> None:
    if not bad:
        return
    if strict:
        p, why = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise EdgeBranchyError(f"{p}: {why}{more}; without `strict_images` such files are skipped")
    for p, why in bad[:MAX_NAMED]:
        log(f"skipping {p}: {why}")
    log(f"skipped {len(bad)} file(s) that are not usable images" +
        (f" ({len(bad) - MAX_NAMED} not named above)" if len(bad) > MAX_NAMED else ""))


def scan(root: Path, classes: list[str] | None = None, strict: bool = False,
         log: Callable[[str], None] | None = None) -> tuple[list[str], np.ndarray, list[str]]:
    """(image paths, labels, class names) of root/<class>/**; bad files reported, then skipped or refused."""
    log = log or _stderr
    found = _class_dirs(root)
    if classes is None:
        classes = found
        if not classes:
            raise EdgeBranchyError(f"{root}: no class folders (expected {root}/<class>/<image files>)")
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise EdgeBranchyError(f"{root}: class folder(s) {', '.join(extra)} are not in the training classes")
    paths, labels, bad = [], [], []
    for label, c in enumerate(classes):
        d = root / c
        if not d.is_dir():
            continue
        for p in sorted(q for q in d.rglob("*") if q.is_file() and not q.name.startswith(".")):
            why = check_image(p)
            if why:
                bad.append((p, why))
            else:
                paths.append(str(p))
                labels.append(label)
    _report(bad, strict, log)
    return paths, np.asarray(labels, dtype=np.int64), classes


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def image_files(items: Iterable[str | os.PathLike], strict: bool = False,
                log: Callable[[str], None] | None = None) -> list[Path]:
    """Files given on the command line: a directory stands for its image files (recursively, sorted)."""
    log = log or _stderr
    files, bad = [], []
    for item in items:
        p = Path(item)
        if p.is_dir():
            cands = sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
        elif p.is_file():
            cands = [p]
        else:
            raise EdgeBranchyError(f"{p}: no such file or directory")
        for q in cands:
            why = check_image(q)
            (bad.append((q, why)) if why else files.append(q))
    _report(bad, strict, log)
    if not files:
        raise EdgeBranchyError("no usable image files among " + ", ".join(map(str, items)))
    return files


def _mean_std(x: ImageArray) -> tuple[list[float], list[float]]:
    n = len(x)
    idx = np.unique(np.linspace(0, n - 1, min(n, NORM_SAMPLES)).astype(np.int64))
    s = x[idx].astype(np.float64) / 255.0
    std = s.std(axis=(0, 2, 3))
    return s.mean(axis=(0, 2, 3)).tolist(), np.where(std < 1e-8, 1.0, std).tolist()


def load_imagefolder(data_dir: str | os.PathLike | None, val_size: int | None = None, seed: int = 0,
                     limit: int | None = None, options: dict | None = None,
                     log: Callable[[str], None] | None = None):
    """A DataBundle over an image folder. `options`: size, crop, color, mean, std, strict (all optional)."""
    from edgebranchy.data.datasets import DataBundle, Normalization, Split, split_train_val

    if data_dir is None:
        raise EdgeBranchyError("dataset 'imagefolder' needs `data_dir` DIR with one folder of images per class")
    root = Path(data_dir)
    if not root.is_dir():
        raise EdgeBranchyError(f"image folder not found: {root}")
    o = dict(options or {})
    unknown = set(o) - {"size", "crop", "color", "mean", "std", "strict"}
    if unknown:
        raise EdgeBranchyError(f"unknown image folder option(s): {', '.join(sorted(unknown))}")
    spec = ImageSpec.make(o.get("size"), o.get("crop"), o.get("color") or "RGB")
    strict = bool(o.get("strict", False))
    parts = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if parts and "train" not in parts:
        raise EdgeBranchyError(f"{root} has {', '.join(parts)} but no train folder")
    tr_paths, tr_y, classes = scan(parts.get("train", root), strict=strict, log=log)
    given = {s: scan(parts[s], classes, strict, log)[:2] for s in ("val", "test") if s in parts}
    if len(tr_y) < 2:
        raise EdgeBranchyError(f"{root}: {len(tr_y)} usable training image(s); need at least 2")
    tr = np.arange(len(tr_y))
    if "test" in given:
        te_paths, te_y = given["test"]
    else:  # carve the test split with a fixed seed
        rest, te = split_train_val(len(tr), max(1, len(tr) // 10), TEST_SEED)
        te_paths, te_y = [tr_paths[i] for i in te], tr_y[te]
        tr = rest
    if limit is not None:
        if limit < 1:
            raise EdgeBranchyError(f"limit must be at least 1, got {limit}")
        keep = np.random.default_rng(TEST_SEED).permutation(len(tr))[:limit]
        tr = np.sort(tr[keep])
        te_paths, te_y = te_paths[:limit], te_y[:limit]
    if "val" in given:
        va_paths, va_y = given["val"]
        if val_size is not None and val_size != len(va_y):
            raise EdgeBranchyError(f"`val_size` {val_size}: {parts['val']} holds the validation split "
                                   f"({len(va_y)} images)")
    else:
        t, v = split_train_val(len(tr), max(1, len(tr) // 10) if val_size is None else val_size, seed)
        va_paths, va_y = [tr_paths[i] for i in tr[v]], tr_y[tr[v]]
        tr = tr[t]
    x_tr = ImageArray([tr_paths[i] for i in tr], spec)
    if o.get("mean") is not None or o.get("std") is not None:
        mean, std = _given_stats(o.get("mean"), o.get("std"), spec.channels)
    else:
        mean, std = _mean_std(x_tr)
    recorded = {k: o[k] for k in ("size", "crop", "color", "mean", "std", "strict") if o.get(k) is not None}
    split = _split_record(root, (tr_paths, tr_y), given, va_paths, limit, len(va_y), seed, classes)
    return DataBundle("imagefolder", Split(x_tr, tr_y[tr]), Split(ImageArray(va_paths, spec), np.asarray(va_y)),
                      Split(ImageArray(te_paths, spec), np.asarray(te_y)), classes,
                      Normalization(255.0, mean, std), str(root.resolve()), split_seed=seed,
                      meta={"image": recorded, "input": spec.to_input(), "split": split})


def _split_record(root: Path, train, given: dict, va_paths, limit, val_size: int, seed: int, classes) -> dict:
    """The split block (data/splits.py) of a folder: its listing (relative paths, byte sizes, labels and the
    class names, not the pixels) and the validation images' relative paths."""
    from edgebranchy.data.splits import names_digest, split_block

    def rel(p) -> str:
        return Path(p).relative_to(root).as_posix()

    listing = ["\t".join(classes)]
    for paths, labels in [train] + [given[s] for s in ("val", "test") if s in given]:
        listing += [f"{rel(p)}\t{os.path.getsize(p)}\t{int(y)}" for p, y in zip(paths, labels)]
    return split_block(limit, val_size, seed, names_digest(listing), names_digest([rel(p) for p in va_paths]))


def _given_stats(mean, std, channels: int) -> tuple[list[float], list[float]]:
    if mean is None or std is None:
        raise EdgeBranchyError("give both `mean` and `std` (per channel, on pixels scaled to 0..1)")
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    for name, v in (("mean", mean), ("std", std)):
        if len(v) != channels:
            raise EdgeBranchyError(f"--{name} needs {channels} value(s) for {channels}-channel images, got {len(v)}")
    if min(std) <= 0:
        raise EdgeBranchyError("`std` values must be positive")
    return mean, std


def reader_options(input_block: dict, dataset: str = "imagefolder") -> dict | None:
    """Reader options that read an image folder as an artifact or checkpoint `input` block records it
    (None for the other datasets, which need none)."""
    if dataset != "imagefolder":
        return None
    spec = ImageSpec.from_input(input_block)
    return {"size": spec.size, "crop": spec.crop[0], "color": spec.color, "mean": list(input_block["mean"]), "std": list(input_block["std"])}


def load_images(paths: Sequence[str | os.PathLike], input_block: dict) -> np.ndarray:
    """Image files -> uint8 N x C x H x W, prepared as `input_block` (a manifest's) records."""
    spec = ImageSpec.from_input(input_block)
    out = np.empty((len(paths), *spec.shape), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            out[i] = load_image(p, spec)
        except BadImage as e:
            raise EdgeBranchyError(str(e)) from None
    return out
