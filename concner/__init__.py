"""ConCNER Studio: cross-lingual NER for low-resource languages (dual-contrastive training + KD)."""

import os as _os

# Idle OpenMP threads sleep instead of spinning. OpenMP reads this once, when torch is
# first imported, so it is set here, before any module of the package imports torch. On 2
# cores shared with other processes (the app, the worker, Argilla), spinning made a
# 2-thread training step 2.5-6x slower in wall time and burnt ~4.7x the CPU (measured with
# OMP_WAIT_POLICY unset vs PASSIVE); an explicit setting in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"
