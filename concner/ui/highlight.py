"""Entity highlighting as HTML, with right-to-left scripts laid out right to left.

Every sentence gets its own block with ``dir="rtl"`` for languages written right to left
(Arabic, Hebrew, Persian, Urdu, ...) and ``dir="auto"`` otherwise, so the browser's
bidi algorithm orders mixed text. Entity marks are ``<mark>`` elements coloured per label
with the label (and the model's score) in a small badge; every piece of user text is
HTML-escaped.
"""

from __future__ import annotations

import colorsys
import html
from collections.abc import Sequence

from concner.labels import Span

#: ISO 639-1 (and a few 639-3) codes of languages written right to left.
RTL_LANGS: frozenset[str] = frozenset(
    {"ar", "he", "iw", "fa", "ur", "yi", "ps", "sd", "ug", "dv", "ckb", "syr", "arz", "azb"}
)

_BASE_COLOURS = {
    "PER": "#fde68a",  # amber
    "ORG": "#bfdbfe",  # blue
    "LOC": "#bbf7d0",  # green
    "MISC": "#fbcfe8",  # pink
    "DATE": "#ddd6fe",
}


def direction(lang: str | None) -> str:
    """``"rtl"`` for right-to-left languages, ``"auto"`` otherwise."""
    return "rtl" if (lang or "").lower() in RTL_LANGS else "auto"


def label_colour(label: str) -> str:
    """A stable pastel colour per label (fixed for common labels, hashed for the rest)."""
    if label in _BASE_COLOURS:
        return _BASE_COLOURS[label]
    h = sum((i + 1) * ord(c) for i, c in enumerate(label)) % 360 / 360.0
    r, g, b = colorsys.hls_to_rgb(h, 0.85, 0.7)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _mark(text: str, span: Span) -> str:
    badge = html.escape(span.label)
    if span.score is not None:
        badge += f" {span.score:.2f}"
    title = html.escape(span.label + ("" if span.score is None else f" (score {span.score:.3f})"))
    return (
        f'<mark class="concner-ent" data-label="{html.escape(span.label)}" title="{title}" '
        f'style="background:{label_colour(span.label)};padding:0.1em 0.3em;border-radius:0.3em;'
        f'unicode-bidi:isolate">{html.escape(text[span.start:span.end])}'
        f'<span style="font-size:0.7em;font-weight:600;margin-inline-start:0.35em;opacity:0.8">'
        f"{badge}</span></mark>"
    )


def highlight_html(text: str, spans: Sequence[Span], lang: str | None, *,
                   sentence_id: str | None = None) -> str:
    """One sentence as a ``<div dir=...>`` with its entities marked.

    ``spans`` are character spans into ``text`` (code points, non-overlapping; overlapping
    or out-of-range spans raise :class:`ValueError` since they mean a bug upstream).
    """
    parts: list[str] = []
    pos = 0
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if span.start < pos or span.end > len(text) or span.start >= span.end:
            raise ValueError(f"span {span.start}-{span.end} overlaps another or is outside "
                             f"the text of length {len(text)}")
        parts.append(html.escape(text[pos:span.start]))
        parts.append(_mark(text, span))
        pos = span.end
    parts.append(html.escape(text[pos:]))
    ident = f' data-sentence="{html.escape(sentence_id)}"' if sentence_id else ""
    lang_attr = f' lang="{html.escape(lang)}"' if lang else ""
    return (f'<div class="concner-sent" dir="{direction(lang)}"{lang_attr}{ident} '
            f'style="line-height:2;margin:0.2em 0">{"".join(parts)}</div>')


def side_by_side_html(text: str, predicted: Sequence[Span], corrected: Sequence[Span],
                      lang: str | None, *, left: str = "model", right: str = "correction") -> str:
    """Prediction and correction of one sentence in two columns; spans that differ are
    listed under the table (added in the correction / removed from the prediction)."""
    pred_keys = {s.key() for s in predicted}
    corr_keys = {s.key() for s in corrected}
    added = sorted(corr_keys - pred_keys)
    removed = sorted(pred_keys - corr_keys)

    def describe(keys):
        return ", ".join(f"{html.escape(text[s:e])} ({html.escape(lab)})" for s, e, lab in keys)

    diff = []
    if added:
        diff.append(f"<b>added</b>: {describe(added)}")
    if removed:
        diff.append(f"<b>removed</b>: {describe(removed)}")
    verdict = "; ".join(diff) if diff else "accepted as predicted"
    return (
        '<table class="concner-diff" style="width:100%;table-layout:fixed"><tr>'
        f'<th style="text-align:start">{html.escape(left)}</th>'
        f'<th style="text-align:start">{html.escape(right)}</th></tr><tr>'
        f'<td style="vertical-align:top">{highlight_html(text, predicted, lang)}</td>'
        f'<td style="vertical-align:top">{highlight_html(text, corrected, lang)}</td></tr>'
        f'<tr><td colspan="2" style="font-size:0.85em">{verdict}</td></tr></table>'
    )


def legend_html(labels: Sequence[str]) -> str:
    items = "".join(
        f'<span style="background:{label_colour(lab)};padding:0.1em 0.4em;border-radius:0.3em;'
        f'margin-inline-end:0.4em">{html.escape(lab)}</span>' for lab in labels
    )
    return f'<div class="concner-legend">{items}</div>'
