# n2react in a GPU container: Keras on the JAX backend with CUDA 12 wheels (the host needs only
# the NVIDIA driver and the NVIDIA container toolkit). Build and run (README, "GPU and containers"; the
# same lines, checked by tests/test_container.py):
#   docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t n2react .
#   mkdir -p data runs
#   docker run --rm --gpus all --user "$(id -u):$(id -g)" -v "$PWD/data:/data" -v "$PWD/runs:/runs" n2react model=keras_mlp device=gpu
# Outputs (Hydra run directories, mlflow.db, mlartifacts/) land in the /runs volume. The data
# files are read from /data (N2_DATA_DIR), and the public copy, when not there, is fetched into
# /data too (N2_CACHE_DIR): with the data/ volume it is fetched once, by the first run, and read
# from data/ after (without the volume, every `docker run --rm` fetches it again). `mkdir` first:
# a folder Docker creates for a volume belongs to root, and the job runs as you.
#
# Any --user works: HOME and the caches (matplotlib, Keras) point into /home/app, writable by
# every uid (sticky, like /tmp), as /runs and /data are, not at "/" as for a uid the image does not
# know. TensorFlow is not installed: with KERAS_BACKEND=jax nothing in n2react, Keras or
# keras-tuner imports it (tests/test_container.py trains a Keras run with it blocked).
#
# Layers, slowest-changing first: the dependencies are installed from pyproject.toml alone, so an
# edit of the source rebuilds only the last, small layer. Pin the base by digest where you build
# (docker buildx imagetools inspect python:3.11-slim-bookworm) for byte-identical rebuilds.
FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KERAS_BACKEND=jax \
    N2_DATA_DIR=/data \
    N2_CACHE_DIR=/data \
    HOME=/home/app \
    XDG_CACHE_HOME=/home/app/.cache \
    XDG_CONFIG_HOME=/home/app/.config \
    MPLCONFIGDIR=/home/app/.config/matplotlib \
    KERAS_HOME=/home/app/.keras

WORKDIR /opt/n2react

# 1. dependencies only (the package's own code is not here yet): read them from pyproject.toml,
#    less TensorFlow and TensorBoard (the JAX backend needs neither)
COPY pyproject.toml ./
RUN python -c "import re, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if re.split('[<>=!~ ;\\[]', d)[0].lower() not in ('tensorflow', 'tensorboard')))" > requirements.txt \
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

# the default user (uid 1000); /runs, /data and /home/app writable by whichever --user runs it
RUN useradd --no-create-home --home-dir /home/app --uid 1000 n2react \
    && mkdir -p /runs /data "$XDG_CACHE_HOME" "$MPLCONFIGDIR" "$KERAS_HOME" \
    && chmod 1777 /runs /data /home/app "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME" "$MPLCONFIGDIR" "$KERAS_HOME"
USER 1000:1000
WORKDIR /runs
ENTRYPOINT ["python", "-m", "train"]
CMD ["model=keras_mlp", "device=auto"]
