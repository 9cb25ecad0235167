"""neuroadapt: biologically inspired spiking networks, checked against independent references."""
from setuptools import find_packages, setup

# Pins that matter on the machines we support (see README "Install"):
# torch/torchvision are the releases that lie on disk for Python 3.11 here (any looser
# pin may download several GB); brian2 2.9.0 breaks on numpy >= 2.4 (ndarray.ptp).
INSTALL_REQUIRES = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "numpy>=1.24,<2.4",
    "scipy>=1.10",
    "snntorch>=0.9",
    "norse>=1.1",
    "brian2>=2.7",
    "nir>=1.0.6",
    "nirtorch>=2.0",
    "tonic>=1.5",
    "h5py>=3.8",
    "matplotlib>=3.7",
    "tqdm>=4.60",
    "pyyaml>=6.0",
    "scikit-learn>=1.3",
    "safetensors>=0.4",
]

# `neuroadapt export --to spinnaker --verify` runs the written PyNN script on NEST. Both are wheels
# (nest-simulator: manylinux, cp310/cp311); PyNN 0.13 is the release that supports NEST 3.10. The
# tests run them, so the dev extra installs them.
SPINNAKER_VERIFY = ["pynn==0.13.0", "nest-simulator==3.10.0"]

setup(
    name="neuroadapt",
    version="0.1.0",
    description="Biologically inspired spiking networks (ELM, astrocytes, HLOP, NHL) built on snnTorch, "
    "checked against Brian2 and exported to neuromorphic toolchains",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["neuroadapt", "neuroadapt.*"]),
    package_data={"neuroadapt": ["core/*.c", "core/*.h", "data/assets/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"dev": ["pytest>=7", "hypothesis>=6", *SPINNAKER_VERIFY], "spinnaker": SPINNAKER_VERIFY},
    entry_points={"console_scripts": ["neuroadapt=neuroadapt.cli:main"]},
)
