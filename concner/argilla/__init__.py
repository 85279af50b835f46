"""Argilla 2.x: the client (the only module that imports argilla), its records, the sync and the local stack."""
