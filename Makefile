# Every target bootstraps what it needs on a fresh machine (Python 3.11, Java 17, Maven).
# .venv        : everything (TensorFlow included) for tests, training and export
# .venv-worker : the worker only (no TensorFlow), for the demo

PYTHON ?= python3
VENV := .venv
WVENV := .venv-worker
SHARED ?= ../shared/data
# Training sources, each CSV[:WEIGHT]: the emoticon-labelled 2009 sample counts half as much
# per row as the human-labelled SemEval tweets.
DATA ?= $(SHARED)/sentiment140-100k/sentiment140-100k.csv:0.5 $(SHARED)/semeval-2013-2016/semeval-2013-2016.csv
TRAIN_FLAGS ?=
RUN ?= runs/shipped
MODEL ?= models/sentistream-lstm
KAFKA := tools/kafka/kafka.sh

.PHONY: help test check lint unit demo train export bench kafka-start kafka-stop clean helm

help:
	@echo "make demo   - local Kafka + worker + replayed tweets (no Docker, no TensorFlow)"
	@echo "make test   - lint, type-check and every test (starts its own Kafka broker)"
	@echo "make check  - the inner loop: lint, type-check and the unit tests (no Kafka, no training)"
	@echo "make train  - train on DATA=$(DATA) and export to $(MODEL)"
	@echo "make bench  - the benchmark in BENCHMARKS.md"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

$(WVENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(WVENV)
	$(WVENV)/bin/pip install --quiet --upgrade pip
	$(WVENV)/bin/pip install --quiet -e '.[worker]'
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

test: lint
	$(KAFKA) fetch
	tools/connect/connect.sh fetch
	$(VENV)/bin/python -m pytest

unit: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m "not integration and not slow"

# The inner loop (under 3 minutes here): everything that needs neither a broker nor training.
check: lint unit

demo: $(WVENV)/.installed
	$(KAFKA) fetch
	VENV=$(WVENV) tools/demo.sh

train: $(VENV)/.installed
	$(VENV)/bin/sentistream train $(addprefix --data ,$(DATA)) --out $(RUN)/keras $(TRAIN_FLAGS)
	$(MAKE) export

# Export float and int8, score both on every source's test split and the demo tweets, and copy
# the figures the README's model card shows.
export: $(VENV)/.installed
	$(VENV)/bin/sentistream export --keras-dir $(RUN)/keras --out $(MODEL)
	$(VENV)/bin/sentistream export --keras-dir $(RUN)/keras --out $(MODEL)-int8 --quantize int8
	$(VENV)/bin/sentistream evaluate --model-dir $(MODEL) --json \
		$(addprefix --data ,$(wildcard $(RUN)/keras/test-*.csv) examples/demo-tweets.csv) \
		> $(RUN)/evaluate-float.json
	$(VENV)/bin/sentistream evaluate --model-dir $(MODEL)-int8 --json \
		$(addprefix --data ,$(wildcard $(RUN)/keras/test-*.csv) examples/demo-tweets.csv) \
		> $(RUN)/evaluate-int8.json
	$(VENV)/bin/python tools/notebook_recipe.py $(RUN) > /dev/null
	$(VENV)/bin/python tools/model_card.py $(RUN) > $(RUN)/model-card.md
	mkdir -p docs/model
	cp $(RUN)/keras/training-curves.png $(RUN)/keras/confusion-matrices.png docs/model/
	cat $(RUN)/model-card.md

# Both model folders, each with both Kafka clients, through a throw-away broker; the load comes from kcat (Debian package
# kcat). The figures go to docs/bench/ for BENCHMARKS.md.
# BENCH_CLIENTS: the worker's Kafka client(s) measured end to end (kafka-python, confluent, both).
BENCH_FLAGS ?=
BENCH_CLIENTS ?= both
bench: $(VENV)/.installed
	$(KAFKA) fetch
	@command -v kcat >/dev/null || { echo "make bench needs kcat: apt-get install -y kcat" >&2; exit 1; }
	$(VENV)/bin/sentistream bench --out runs/bench --model-dir $(MODEL) \
		--extra-model-dir $(MODEL)-int8 --kafka-client $(BENCH_CLIENTS) $(BENCH_FLAGS) \
		$(if $(wildcard $(RUN)/keras/manifest.json),--keras-dir $(RUN)/keras)
	mkdir -p docs/bench
	cp runs/bench/throughput-by-batch.png runs/bench/latency-distribution.png \
		runs/bench/bench.md runs/bench/bench.json docs/bench/

# helm (built from the Go module proxy) and the KEDA / prometheus-operator CRDs, into .cache/k8s/;
# tests/test_helm_chart.py runs this itself when they are missing.
helm:
	tools/k8s/fetch.sh

kafka-start:
	$(KAFKA) start

kafka-stop:
	$(KAFKA) stop

clean:
	rm -rf $(VENV) $(WVENV) .pytest_cache .mypy_cache .ruff_cache
