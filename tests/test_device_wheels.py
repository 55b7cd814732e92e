"""The wheels carried to the GPU machine (``benchmarks/device/wheels.txt``) match the package's dependencies."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
#: Dependencies the GPU machine's image already has (see the file's header).
IN_THE_IMAGE = {"torch", "scikit-learn"}


def _pins() -> dict[str, str]:
    lines = (ROOT / "benchmarks" / "device" / "wheels.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pairs}


def test_every_dependency_missing_from_the_gpu_image_is_carried_at_an_accepted_version():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = _pins()
    for requirement in map(Requirement, dependencies):
        name = canonicalize_name(requirement.name)
        if name in IN_THE_IMAGE:
            continue
        assert name in pins, f"{name} is a dependency but benchmarks/device/wheels.txt does not carry it"
        assert requirement.specifier.contains(pins[name]), f"wheels.txt pins {name}=={pins[name]}, not {requirement}"
