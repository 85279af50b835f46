"""Fixtures the job tests share: a store on every backend, and a tiny encoder per module."""

import pytest
from storekit import BACKENDS, open_store, tiny_encoder


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """An empty store on SQLite, and on PostgreSQL when CONCNER_TEST_POSTGRES_URL is set."""
    with open_store(request.param, tmp_path) as st:
        yield st


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A tiny randomly initialised encoder folder, built once per test module."""
    return tiny_encoder(tmp_path_factory.mktemp("enc"))
