# The training container for Vertex AI custom jobs on CPU and GPU machines:
# its ENTRYPOINT is python -m trainer.task, so a job spec's args are the trainer's flags.
#   scripts/build_image.sh --project P --region R      (build and push to Artifact Registry)
#   docker run --rm IMAGE --smoke --cpu                  (a local smoke run)
# TensorFlow comes from pip with its CUDA libraries (the and-cuda extra): the host needs only
# the NVIDIA driver, which Vertex GPU machines have, and the same image runs on CPU machines.
# TF_VERSION must lie in setup.py's TF_RANGE, and tf-keras is pinned to the same version.
# The TPU container is Dockerfile.tpu.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG TF_VERSION=2.21.0
ARG TF_KERAS_VERSION=2.21.0
# Unbuffered output reaches Cloud Logging line by line, even when a job is killed.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# The TensorFlow layer first: it is large and changes rarely, the package changes often.
RUN pip install --no-cache-dir "tensorflow[and-cuda]==${TF_VERSION}" "tf-keras==${TF_KERAS_VERSION}"

# The package, installed from the source tree (setup.py), as `pip install .` does anywhere.
WORKDIR /src
COPY setup.py pyproject.toml ./
COPY trainer ./trainer
# Training runs as an unprivileged user; its home holds ./output and Keras' downloaded weights.
RUN pip install --no-cache-dir . \
 && useradd --create-home --uid 1000 trainer
USER 1000:1000
WORKDIR /home/trainer
ENTRYPOINT ["python", "-m", "trainer.task"]
