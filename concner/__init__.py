"""ConCNER Studio: cross-lingual NER for low-resource languages (dual-contrastive training + KD)."""

__version__ = "0.1.0"
