"""Test-wide settings: no hub access (tests build their models), one torch thread."""

import os

# Set before transformers/datasets are imported by any test module: a hub id that cannot be
# reached then fails at once instead of after ~50 s of retries.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
