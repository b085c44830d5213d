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
COPY scripts/setup-python.sh scripts/
COPY services/trainer/requirements.txt services/trainer/
# torch first, from PyTorch's CPU index: requirements.txt pins torch==2.13.0,
# which PyPI would resolve with gigabytes of CUDA wheels. ==2.13.0 then accepts
# the installed 2.13.0+cpu, and setup-python.sh installs the rest and writes
# the stamp that lets scripts/data.sh skip pip at run time.
RUN python -m venv .venv \
 && .venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && bash scripts/setup-python.sh \
 && rm -rf .cache
COPY scripts scripts
COPY services/trainer services/trainer
USER 10001:10001
CMD ["bash", "scripts/data.sh", "--help"]
