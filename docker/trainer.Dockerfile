# syntax=docker/dockerfile:1
# sentistream trainer/exporter image: TensorFlow 2.21, tf2onnx, onnx, pandas, scikit-learn.
#   docker build -f docker/trainer.Dockerfile -t sentistream-trainer:local .
#   docker compose --profile train run --rm trainer

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
RUN mkdir -p src/sentistream && touch src/sentistream/__init__.py \
    && pip install ".[train]" \
    && pip uninstall -y sentistream
COPY src ./src
RUN pip install --no-deps ".[train]"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY models ./models
COPY examples ./examples
# /models: the `models` volume; created here so a fresh volume is owned by `app`.
RUN mkdir -p /models /data && chown app:app /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2
USER app
ENTRYPOINT ["sentistream"]
CMD ["train", "--help"]
