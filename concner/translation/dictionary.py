"""Word-by-word (code-switched) translation from FreeDict dictionaries in dictd format.

Files: ``<dir>/freedict-<src>-<tgt>.index`` and ``.dict.dz`` (Debian packages
``dict-freedict-eng-deu`` etc.). The index is text, one ``headword<TAB>offset<TAB>length``
line per entry, offset and length in dictd's base64 digits (``A``=0 … ``/``=63, most
significant first); they address the uncompressed ``.dict``. The ``.dict.dz`` is dictzip:
gzip with a random-access chunk table in the header, so plain ``gzip`` reads it whole.

Translation rule (the projection is exact by construction, so every pair is ``ok``):

- entity tokens (tag not ``O``) are kept as they are, with their tags;
- each other token with a letter in it is replaced, with probability ``share`` (seeded per
  sentence id, so results do not depend on batch order), by the *first sense* of its
  dictionary entry: the first definition line of the first entry whose headword is the
  word (case-sensitive match preferred), with grammar markup (``<neut>``, ``[mus.]``,
  ``(…)``, ``{…}``, sense numbers ``1.``/``I.``) removed, cut at the first ``,`` or ``;``;
  senses holding placeholders (``etw.``, ``sb.``), abbreviations (a ``.``), more than
  :data:`MAX_SENSE_WORDS` words, or nothing but punctuation are skipped; the lower-cased
  word is looked up first, then the word as written, always matching case exactly;
- a multi-word sense becomes several ``O`` tokens; words not in the dictionary stay;
- when the source word starts with a capital, so does its translation.
"""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path

from concner.config import TranslationConfig
from concner.errors import DataFormatError, ServiceUnavailable
from concner.labels import OUTSIDE
from concner.sentence import Sentence, tokenize_text
from concner.translation.base import Progress, ProjectedPair, Status, Translator
from concner.translation.langcodes import iso3

_B64 = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_MARKUP = re.compile(r"<[^>]*>|\[[^\]]*\]|\([^)]*\)|\{[^}]*\}")
_NUMBERING = re.compile(r"^\s*(?:[IVX]+\.|\d+\.|[a-z]\))\s*")
_PLACEHOLDERS = re.compile(r"\b(?:etw|jdn|jdm|jds|sb|sth|smb|smth|sg)\.", re.IGNORECASE)
#: Longer "senses" are explanations ("v.z. tussen woorden van …"), not translations.
MAX_SENSE_WORDS = 3
_SKIP_LINE = re.compile(r"^\s*(?:\"|see:|Synonyms?:|Note:|Antonyms?:|-\s)")


def decode_b64(digits: str) -> int:
    """dictd's base64 number: ``decode_b64("BAK3S") == 1090..``; raises on a bad digit."""
    value = 0
    for ch in digits:
        value = value * 64 + _B64[ch]
    return value


class DictdDictionary:
    """A dictd dictionary read into memory (index as a dict, data decompressed whole)."""

    def __init__(self, index_path: str | Path, dict_path: str | Path):
        self.index_path, self.dict_path = Path(index_path), Path(dict_path)
        # headword (lower-cased) -> [(headword, offset digits, length digits, line)];
        # the base64 digits are decoded on lookup (half a million entries for eng-deu)
        self._index: dict[str, list[tuple[str, str, str, int]]] = {}
        with open(self.index_path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3:
                    raise DataFormatError("expected 'headword<TAB>offset<TAB>length'",
                                          path=str(self.index_path), line=number)
                self._index.setdefault(parts[0].lower(), []).append((*parts, number))
        with gzip.open(self.dict_path, "rb") as handle:
            self._data = handle.read()
        self._senses: dict[str, str | None] = {}

    def __contains__(self, word: str) -> bool:
        return word.lower() in self._index

    def entries(self, word: str) -> list[str]:
        """Raw definitions indexed under exactly ``word`` (case-sensitive)."""
        entries = []
        for head, offset, length, number in self._index.get(word.lower(), []):
            if head != word:
                continue
            try:
                start, size = decode_b64(offset), decode_b64(length)
            except KeyError:
                raise DataFormatError("offset/length are not dictd base64 digits",
                                      path=str(self.index_path), line=number) from None
            entries.append(self._data[start:start + size].decode("utf-8", errors="replace"))
        return entries

    def first_sense(self, word: str) -> str | None:
        """The first clean single translation of ``word``, or ``None`` (see module doc).

        The lower-cased word is looked up first ("The" -> "the"), then the word as written;
        matching is case-sensitive, so "who" never finds the entry for "WHO"."""
        if word not in self._senses:
            forms = list(dict.fromkeys([word.lower(), word]))
            self._senses[word] = next(
                (s for s in map(self._first_sense, forms) if s is not None), None)
        return self._senses[word]

    def _first_sense(self, word: str) -> str | None:
        for entry in self.entries(word):
            head, _, body = entry.partition("\n")
            headword = head.split(" /")[0].split(" <")[0].strip()
            if headword != word:
                continue  # indexed under an alternative form (e.g. "in" -> "inch")
            for line in body.splitlines():
                if not line.strip() or _SKIP_LINE.match(line):
                    continue
                sense = clean_sense(line)
                if sense:
                    return sense
        return None


def clean_sense(line: str) -> str | None:
    """One definition line -> its first clean translation (markup and numbering removed)."""
    text = _MARKUP.sub(" ", line)
    previous = None
    while previous != text:
        previous, text = text, _NUMBERING.sub("", text)
    for candidate in re.split(r"[,;]", text):
        candidate = " ".join(candidate.split()).strip(" .:-")
        if (not candidate or _PLACEHOLDERS.search(candidate) or "/" in candidate
                or "." in candidate or len(candidate.split()) > MAX_SENSE_WORDS):
            continue  # placeholders, abbreviations and explanations are not translations
        if any(c.isalpha() for c in candidate):
            return candidate
    return None


class DictionaryTranslator(Translator):
    """Code-switched translation with FreeDict; see the module docstring for the rule."""

    backend = "dictionary"

    def __init__(self, source_lang: str = "en", *, config: TranslationConfig | None = None,
                 share: float | None = None, seed: int | None = None,
                 directory: str | Path | None = None):
        config = config or TranslationConfig()
        self.source_lang = source_lang
        self.share = config.dictionary_share if share is None else share
        self.seed = config.dictionary_seed if seed is None else seed
        self.directory = Path(config.dictionary_dir if directory is None else directory)
        self.model = f"freedict:{self.directory}"
        self._dictionaries: dict[str, DictdDictionary] = {}

    def dictionary(self, target_lang: str) -> DictdDictionary:
        """The dictionary into ``target_lang`` (loaded once); raises when not installed."""
        if target_lang not in self._dictionaries:
            pair = f"{iso3(self.source_lang)}-{iso3(target_lang)}"
            index = self.directory / f"freedict-{pair}.index"
            data = self.directory / f"freedict-{pair}.dict.dz"
            if not index.is_file() or not data.is_file():
                raise ServiceUnavailable(
                    f"no FreeDict dictionary {pair} in {self.directory}; install it with "
                    f"'apt-get install dict-freedict-{pair}' (Debian/Ubuntu)")
            self._dictionaries[target_lang] = DictdDictionary(index, data)
        return self._dictionaries[target_lang]

    def translate(self, sentences: list[Sentence], target_lang: str, *,
                  progress: Progress | None = None) -> list[ProjectedPair]:
        dictionary = self.dictionary(target_lang)
        pairs = []
        for n, sentence in enumerate(sentences, 1):
            pairs.append(self._one(sentence, target_lang, dictionary))
            if progress is not None and (n % 100 == 0 or n == len(sentences)):
                progress(n, len(sentences))
        return pairs

    def _one(self, sentence: Sentence, target_lang: str, dictionary: DictdDictionary
             ) -> ProjectedPair:
        rng = random.Random(f"{self.seed}:{sentence.id}")
        tags_in = sentence.tags or [OUTSIDE] * len(sentence.tokens)
        tokens: list[str] = []
        tags: list[str] = []
        candidates = replaced = 0
        for token, tag in zip(sentence.tokens, tags_in):
            if tag != OUTSIDE or not any(c.isalpha() for c in token):
                tokens.append(token)
                tags.append(tag)
                continue
            candidates += 1
            sense = dictionary.first_sense(token) if rng.random() < self.share else None
            if sense is None:
                tokens.append(token)
                tags.append(tag)
                continue
            if token[0].isupper():
                sense = sense[0].upper() + sense[1:]
            words, _ = tokenize_text(sense, target_lang)
            tokens.extend(words)
            tags.extend([OUTSIDE] * len(words))
            replaced += 1
        meta = {"source_id": sentence.id, "projection": Status.OK.value,
                "backend": self.backend, "translated_words": replaced,
                "candidate_words": candidates}
        translated = Sentence.from_tokens(f"{sentence.id}-{target_lang}", target_lang, tokens,
                                          tags if sentence.tags is not None else None, meta=meta)
        return ProjectedPair(sentence, translated, Status.OK, "", target_lang)
