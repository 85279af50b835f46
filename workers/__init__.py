"""Worker processes started by `concner up` or by hand (`python -m workers.retrain`)."""
