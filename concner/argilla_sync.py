"""Old name of :mod:`concner.argilla.sync`, kept for configs that list it in ``services.sync_modules``; goes in 0.3."""
from concner.argilla.sync import *  # noqa: E402,F401,F403 (importing it registers the hook)
