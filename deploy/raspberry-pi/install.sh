#!/bin/sh
# Install the torch-free edgebranchy runtime (numpy, ONNX Runtime, psutil, tqdm) on 64-bit Raspberry Pi OS
# (Bookworm: Python 3.11) into a venv, then check it.
#   sh install.sh edgebranchy-0.1.0-py3-none-any.whl [VENV_DIR]     (default VENV_DIR: ~/.edgebranchy/venv)
# Not run on a Raspberry Pi in this project (none here); `edgebranchy remote` does the same steps over ssh.
set -eu
wheel=${1:?usage: sh install.sh WHEEL [VENV_DIR]}
venv=${2:-$HOME/.edgebranchy/venv}
arch=$(uname -m)
if [ "$arch" != "aarch64" ]; then
    echo "install.sh: this is $arch; ONNX Runtime publishes wheels for 64-bit (aarch64) Raspberry Pi OS only" >&2
    exit 2
fi
py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' || {
    echo "install.sh: Python $py is too old (the runtime needs 3.8+; Bookworm has 3.11)" >&2; exit 2; }
# python3-venv: Raspberry Pi OS's Python is "externally managed", pip only works in a venv;
# python3-dev + gcc: in case a dependency has no aarch64 wheel for this Python and is built from source
if ! python3 -m venv --help >/dev/null 2>&1 || [ ! -f "/usr/include/python$py/Python.h" ]; then
    sudo apt-get update && sudo apt-get install -y python3-venv python3-dev gcc
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check "$wheel"
"$venv/bin/python" -c 'import onnxruntime, numpy, psutil; print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())'
"$venv/bin/edgebranchy" profiles --detect || echo "install.sh: no profiles found: a wheel older than the one that \
carries profiles/ needs EDGEBRANCHY_PROFILES=DIR (a copy of the repository's profiles/)" >&2
echo "installed: $venv/bin/edgebranchy"
