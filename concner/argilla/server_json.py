"""How a ConCNER dataset looks on the Argilla 2.x server, without the SDK: the names of its
field, question and metadata, the REST API's page limits, the search bodies ConCNER sends,
and reading a span answer out of a record's JSON. :mod:`concner.argilla.client` sends them;
this module does not import ``argilla``."""

from __future__ import annotations

from collections.abc import Sequence

from concner.errors import LabelSchemaError
from concner.labels import Span, spans_to_tags
from concner.sentence import Sentence

__all__ = [
    "ANSWERED",
    "ASK_ORDER",
    "BY_ID_MAX",
    "FIELD",
    "PAGE",
    "QUESTION",
    "SEARCH_WINDOW",
    "TERMS_MAX",
    "answer_tags",
    "answered_oldest_first",
    "by_sentence_ids",
    "pending_sorted_by",
]

QUESTION = "entities"
FIELD = "text"
#: record metadata: the active-learning order of the model that made the suggestion
ASK_ORDER = "ask_order"
PAGE = 1000  # the server's largest page for listing records
#: the search engine pages with offset + limit; past this many hits the listing is used
SEARCH_WINDOW = 9000
#: the most values one terms filter takes (argilla-server 2.8)
TERMS_MAX = 250
#: push: at most this many changed records are looked up by id; more: one full listing
BY_ID_MAX = 2000
#: any response, so a discarded or reworked answer is seen too ("pending" = none)
ANSWERED = {"type": "terms", "values": ["submitted", "discarded", "draft"],
            "scope": {"entity": "response", "property": "status"}}


def answered_oldest_first() -> dict:
    """Search body: the records with any response, oldest record first."""
    return {"filters": {"and": [ANSWERED]},
            "sort": [{"scope": {"entity": "record", "property": "inserted_at"},
                      "order": "asc"}]}


def by_sentence_ids(ids: Sequence[str]) -> dict:
    """Search body: the records whose external id (the sentence id) is in ``ids`` (at most
    :data:`TERMS_MAX`)."""
    return {"filters": {"and": [{"type": "terms", "values": list(ids), "scope": {
        "entity": "record", "property": "external_id"}}]}}


def pending_sorted_by(prop: str, order: str) -> dict:
    """Search body: the records still pending, sorted by metadata ``prop`` (``"asc"`` or
    ``"desc"``)."""
    return {"filters": {"and": [{"type": "terms", "values": ["pending"],
                                 "scope": {"entity": "record", "property": "status"}}]},
            "sort": [{"scope": {"entity": "metadata", "metadata_property": prop},
                      "order": order}]}


def answer_tags(raw: dict, resp: dict, sent: Sentence | None) -> tuple[list[str], int]:
    """IOB2 tags of the span answer ``resp`` to record ``raw`` (the server's JSON) over the
    stored sentence's tokens, and how many character-level selections were snapped to
    whole tokens. Raises :class:`LabelSchemaError` when the answer cannot be converted (no
    stored sentence, changed text, a span on whitespace only)."""
    sid = raw["external_id"]
    if sent is None:
        raise LabelSchemaError(f"the store has no sentence {sid!r}")
    if sent.text != raw["fields"].get(FIELD):
        raise LabelSchemaError("the record text differs from the stored sentence")
    value = ((resp.get("values") or {}).get(QUESTION) or {}).get("value") or []
    spans = [Span(int(v["start"]), int(v["end"]), v["label"]) for v in value]
    return spans_to_tags(spans, sent.offsets, snap=True)
