"""Machine translation with label projection: the data the translation-contrastive loss needs.

Backends (one interface, :class:`~concner.translation.base.Translator`):
``apertium`` (Debian MT, HTML markers), ``hf`` (transformers seq2seq, bracket markers),
``dictionary`` (FreeDict word-by-word), ``file`` (user-provided translations).
Use :func:`~concner.translation.base.usable_pairs` to get the training view: failed
projections never reach training.
"""

from concner.translation.base import (
                                      ProjectedPair,
                                      Status,
                                      Translator,
                                      projection_rates,
                                      status_counts,
                                      usable_pairs,
)

__all__ = ["ProjectedPair", "Status", "Translator", "projection_rates", "status_counts",
           "usable_pairs"]
