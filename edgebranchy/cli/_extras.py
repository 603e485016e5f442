"""Which extra to install when a command meets an optional library that is not there (standard library only).

A board's install has no torch: `train`, `export`, `models`, `quickstart`, `calibrate CHECKPOINT` and
`--backend torch` then end with one line naming the extra, exit 2, instead of a ModuleNotFoundError.
"""
from __future__ import annotations

#: the top-level module -> (what it is, the extra that installs it)
_MODULES = {"torch": ("PyTorch", "train"), "onnx": ("the onnx package", "export"),
            "onnxsim": ("onnxsim", "export"), "matplotlib": ("matplotlib", "report"),
            "sklearn": ("scikit-learn", "data"), "PIL": ("Pillow", "images"), "pynvml": ("nvidia-ml-py", "nvml")}
#: commands whose torch comes with a larger extra (export needs onnx and onnxsim too)
_COMMAND_EXTRA = {"export": "export", "quickstart": "export"}


def missing_extra(command: str, error: ImportError) -> str | None:
    """The one line for `error` (a module not installed) in `command`, or None when it is not an optional library."""
    name = (getattr(error, "name", None) or "").split(".")[0]
    if name not in _MODULES:
        return None
    what, extra = _MODULES[name]
    if name == "torch":
        extra = _COMMAND_EXTRA.get(command, extra)
    return (f"this needs {what}, which is not installed here: pip install 'edgebranchy[{extra}]' "
            f"(the device side, from an artifact on, runs without it)" if name == "torch" else
            f"this needs {what}, which is not installed here: pip install 'edgebranchy[{extra}]'")
