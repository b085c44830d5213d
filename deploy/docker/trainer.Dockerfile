# syntax=docker/dockerfile:1
# recsys/trainer: the Python side (services/trainer, scripts/data*): the
# dataset step today, PyTorch training with ONNX export as it lands.
#   docker build -f deploy/docker/trainer.Dockerfile -t recsys/trainer:0.1.0 .
# MovieLens is fetched when the job runs (scripts/data.sh), never baked in.
FROM python:3.11.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    HOME=/tmp
WORKDIR /app
# scripts/data.sh fetches MovieLens with `apt-get download r-cran-dslabs`, which
# works without root but not `apt-get update`: keep the package lists. (They age
# with the image; rebuild it, or run the job with --source grouplens/synthetic.)
RUN apt-get update
COPY scripts/setup-python.sh scripts/lock-python.py scripts/
COPY services/trainer/requirements.txt services/trainer/requirements.lock services/trainer/
# The same locked set as a developer's machine: setup-python.sh installs
# services/trainer/requirements.lock with --require-hashes (torch is locked as
# 2.13.0+cpu, found on PyTorch's CPU index; PyPI's build would pull gigabytes
# of CUDA wheels) and writes the stamp that lets scripts/data.sh skip pip at
# run time.
RUN PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup-python.sh \
 && rm -rf .cache
COPY scripts scripts
COPY services/trainer services/trainer
USER 10001:10001
CMD ["bash", "scripts/data.sh", "--help"]
