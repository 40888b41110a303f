"""What users would write instead of the worker, measured by ``sentistream bench``.

Each peer is a small stand-alone program written the way a library's documentation shows,
classifying one record at a time with the same model and text code as the worker
(:meth:`SentimentModel.encode` and one ONNX Runtime call per tweet):

* :mod:`.plain_loop`: a kafka-python ``KafkaConsumer``/``KafkaProducer`` loop;
* :mod:`.quix_app`: a Quix Streams ``Application`` with a per-record ``apply``; quixstreams
  pins an older confluent-kafka than the project's, so it runs from a bench-only virtualenv
  (``make quix-venv``, ``bench --quix-python``).

:mod:`.common` is what both share (arguments, the model, the label); :mod:`.measure` runs a
peer as the benchmark measures the worker's backlog, :mod:`.report` and :mod:`.plot` publish
the comparison. Nothing here imports a Kafka client at import time: each peer imports its own.
"""
