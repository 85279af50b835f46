"""Old name of :mod:`concner.argilla.sync`, kept for configs that list it in ``services.sync_modules``; goes in 0.3."""
from concner.argilla.sync import *  # every name of the old module
from concner.argilla.sync import register_sync_hooks  # noqa: F401 (the worker's loader calls it)
