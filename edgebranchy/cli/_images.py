"""The image folder flags (--dataset imagefolder) that `train` and `plan` share (standard library only).

`add_image_flags` adds the argument group, `image_options` turns the flags into the reader's options
(data/imagefolder.py: size, crop, color, mean, std, strict; refused without --dataset imagefolder), and
`image_argv` gives back the flags that read a folder the same way (the `next:` command `plan` prints).
"""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import bounded_int, floats

#: reader option -> its flag
_FLAGS = {"size": "--image-size", "crop": "--crop", "color": "--grayscale", "mean": "--mean", "std": "--std",
          "strict": "--strict-images"}


def add_image_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("image folders (--dataset imagefolder)")
    g.add_argument("--image-size", type=bounded_int(1, "input_size"), metavar="N",
                   help="resize the shorter side to N pixels (default 224)")
    g.add_argument("--crop", type=bounded_int(1, "input_size"), metavar="N",
                   help="centre crop N x N after resizing (default: --image-size)")
    g.add_argument("--grayscale", action="store_true", help="read images as one channel (default RGB)")
    g.add_argument("--mean", type=floats, help="per-channel mean on 0..1 pixels, e.g. 0.485,0.456,0.406 "
                                               "(default: measured on the training images)")
    g.add_argument("--std", type=floats, help="per-channel std on 0..1 pixels, e.g. 0.229,0.224,0.225")
    g.add_argument("--strict-images", action="store_true",
                   help="refuse a folder with a damaged or non-image file (default: name it and skip it)")


def image_options(args: argparse.Namespace) -> dict | None:
    """The image folder reader's options from the flags (None when none is given); EdgeBranchyError when one is
    given without --dataset imagefolder."""
    from edgebranchy.errors import EdgeBranchyError

    o = {"size": args.image_size, "crop": args.crop, "color": "L" if args.grayscale else None,
         "mean": args.mean, "std": args.std, "strict": True if args.strict_images else None}
    o = {k: v for k, v in o.items() if v is not None}
    if o and args.dataset != "imagefolder":
        raise EdgeBranchyError(f"{', '.join(_FLAGS[k] for k in o)}: for --dataset imagefolder only")
    return o or None


def image_argv(options: dict | None) -> list[str]:
    """The flags that give `options` (image_options' result) again."""
    out: list[str] = []
    for k, v in (options or {}).items():
        if k in ("color", "strict"):
            out += [_FLAGS[k]] if v and v != "RGB" else []
        elif k in ("mean", "std"):
            out += [_FLAGS[k], ",".join(repr(float(x)) for x in v)]
        else:
            out += [_FLAGS[k], str(v)]
    return out
