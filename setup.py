"""Packaging beyond pyproject.toml: the repository's top-level profiles/ ships in the wheel as edgebranchy/profiles/.

One copy of the profiles stays in the repository (profiles/); setuptools maps that folder
to the package `edgebranchy.profiles` so importlib.resources finds it after a normal install.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["edgebranchy", "edgebranchy.*"]) + ["edgebranchy.profiles"],
    package_dir={"edgebranchy.profiles": "profiles"},
    package_data={"edgebranchy": ["py.typed", "tensorrt/data/*.onnx"], "edgebranchy.profiles": ["*.toml"]},
)
