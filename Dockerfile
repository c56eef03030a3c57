# n2react in a GPU container: Keras on the JAX backend with CUDA 12 wheels (the host needs only
# the NVIDIA driver and the NVIDIA container toolkit).
#   docker build -t n2react .
#   docker run --gpus all -v "$PWD/data:/data" -v "$PWD/runs:/runs" n2react model=keras_mlp device=gpu
# Outputs (Hydra run directories, mlflow.db, mlartifacts/) land in the /runs volume.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KERAS_BACKEND=jax \
    N2_DATA_DIR=/data

WORKDIR /opt/n2react
COPY pyproject.toml README.md ./
COPY src ./src
COPY conf ./conf
RUN pip install -e . "jax[cuda12]>=0.4.30"

WORKDIR /runs
ENTRYPOINT ["python", "-m", "train"]
CMD ["model=keras_mlp", "device=auto"]
