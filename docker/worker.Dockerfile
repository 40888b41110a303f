# syntax=docker/dockerfile:1
# sentistream worker image: ONNX Runtime + kafka-python, no TensorFlow.
#   docker build -f docker/worker.Dockerfile -t sentistream-worker:local .
# Also runs `sentistream produce|tail|predict|bench` (same dependencies).
# With the optional librdkafka client (--kafka-client confluent):
#   docker build -f docker/worker.Dockerfile --build-arg WORKER_EXTRAS=worker,confluent ...

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG WORKER_EXTRAS=worker
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, against a stub package, so editing src/ does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p src/sentistream && touch src/sentistream/__init__.py \
    && pip install ".[${WORKER_EXTRAS}]" \
    && pip uninstall -y sentistream
COPY src ./src
RUN pip install --no-deps ".[${WORKER_EXTRAS}]" \
    && python -c "import sys, sentistream.cli; assert 'tensorflow' not in sys.modules"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY models ./models
COPY examples ./examples
# /models: mount point of the `models` volume the trainer writes (owned by the same uid).
RUN mkdir -p /models && chown app:app /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SENTISTREAM_MODEL_DIR=/app/models/sentistream-lstm
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SENTISTREAM_METRICS_PORT', '8000'), timeout=3)"]
ENTRYPOINT ["sentistream"]
CMD ["worker"]
