"""Jobs and the queue: what the worker runs (retrain, predict, evaluate, translate), when, and its rules."""
