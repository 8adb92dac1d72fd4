"""The HTTP service of ``cbns serve``: a FastAPI app (:mod:`.app`) whose requests are scored in
micro-batches (:mod:`.batcher`, :mod:`.queries`), over a run loaded once per process (:mod:`.loading`)."""
