"""Generated image folders for the tests: PNG and JPEG files of learnable classes, plus bad files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

COLORS = {"cat": (220, 40, 40), "dog": (40, 200, 60), "fox": (40, 60, 220)}


def _image(rng, color, size):
    w, h = size
    base = np.empty((h, w, 3), dtype=np.float64)
    base[:] = color
    # a class-specific stripe orientation beside the colour, and noise
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = ((xx if color[0] > 100 else yy) // 4) % 2
    img = 0.55 * base + 0.25 * 255 * stripes[..., None] + rng.uniform(0, 0.2 * 255, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_image_folder(root: Path, per_class: int = 12, classes=tuple(COLORS), splits: bool = False,
                      bad: bool = True, seed: int = 0, sizes=((40, 36), (36, 44), (48, 48))) -> dict:
    """Write root/<class>/*.png|*.jpg (or root/{train,val,test}/<class>/...); returns what was written."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = {"good": 0, "bad": []}
    parts = {"train": per_class, "val": max(2, per_class // 4), "test": max(2, per_class // 4)} if splits \
        else {"": per_class}
    for part, n in parts.items():
        for c in classes:
            d = root / part / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                im = Image.fromarray(_image(rng, COLORS[c], sizes[i % len(sizes)]))
                if i % 2:
                    im.save(d / f"{c}{i:03d}.jpg", quality=95)
                else:
                    im.save(d / f"{c}{i:03d}.png")
                written["good"] += 1
    if bad:
        first = root / ("train" if splits else "") / classes[0]
        (first / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
        jpg = sorted(first.glob("*.jpg"))[0].read_bytes()
        (first / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
        (first / "notes.txt").write_text("not an image\n")
        written["bad"] = [first / "broken.png", first / "cut.jpg", first / "notes.txt"]
    return written
