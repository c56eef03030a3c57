# n2react in a GPU container: Keras on the JAX backend with CUDA 12 wheels (the host needs only
# the NVIDIA driver and the NVIDIA container toolkit). Build and run (README, "Container"):
#   docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t n2react .
#   docker run --rm --gpus all -v "$PWD/data:/data" -v "$PWD/runs:/runs" n2react model=keras_mlp device=gpu
# Outputs (Hydra run directories, mlflow.db, mlartifacts/) land in the /runs volume.
#
# Layers, slowest-changing first: the dependencies are installed from pyproject.toml alone, so an
# edit of the source rebuilds only the last, small layer. Pin the base by digest where you build
# (docker buildx imagetools inspect python:3.11-slim-bookworm) for byte-identical rebuilds.
FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KERAS_BACKEND=jax \
    N2_DATA_DIR=/data

WORKDIR /opt/n2react

# 1. dependencies only (the package's own code is not here yet): read them from pyproject.toml
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install -r requirements.txt "jax[cuda12]>=0.4.30,<0.8" \
    && rm requirements.txt

# 2. the package itself (configs included), not editable, without touching the dependencies
COPY README.md LICENSE ./
COPY conf ./conf
COPY src ./src
RUN pip install --no-deps . && rm -rf build src/*.egg-info

# 3. the commit this image was built from: a label, and an environment variable that every MLflow
#    run records as its tag git_commit
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="n2react" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
ENV N2REACT_GIT_COMMIT=${GIT_COMMIT}

RUN useradd --create-home --uid 1000 n2react \
    && mkdir -p /runs /data && chown n2react:n2react /runs
USER 1000:1000
WORKDIR /runs
ENTRYPOINT ["python", "-m", "train"]
CMD ["model=keras_mlp", "device=auto"]
