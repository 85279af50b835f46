"""The processes `concner up` runs and supervises."""
