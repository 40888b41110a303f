"""``sentistream bench``: measure the model's ceiling, the worker end to end, and baselines."""
