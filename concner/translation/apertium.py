"""Apertium (Debian's rule-based MT) through a subprocess, with HTML entity markers.

``apertium -u -f html eng-spa``: each sentence goes in its own ``<p>…</p>`` line, many
sentences per process call; the output is split on the ``<p>`` blocks and checked by
count. A batch whose count does not match is split in halves until the culprit is alone;
that one sentence then fails with the reason (nothing is silently shifted).
"""

from __future__ import annotations

import re
import shutil
import subprocess

from concner.config import TranslationConfig
from concner.errors import ConfigError, ServiceUnavailable
from concner.translation.cache import TranslationCache
from concner.translation.engine import MarkerTranslator
from concner.translation.langcodes import split_pair

_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.DOTALL)


def installed_pairs(binary: str = "apertium") -> list[str]:
    """Translation directions ``apertium -l`` lists; raises when Apertium is missing."""
    if shutil.which(binary) is None:
        raise ServiceUnavailable(
            f"{binary!r} is not installed; install it with "
            "'apt-get install apertium apertium-eng-spa' (Debian/Ubuntu)")
    done = subprocess.run([binary, "-l"], capture_output=True, text=True, timeout=60,
                          check=False)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


class ApertiumTranslator(MarkerTranslator):
    """``translate()`` through ``apertium -f html <pair>``; see the module docstring."""

    backend = "apertium"
    style = "html"

    def __init__(self, pair: str, *, config: TranslationConfig | None = None,
                 cache: TranslationCache | None = None, binary: str = "apertium"):
        config = config or TranslationConfig()
        super().__init__(cache=cache, protect=frozenset(config.apertium_protect_types))
        self.source_lang, self.target_lang = split_pair(pair)
        pairs = installed_pairs(binary)
        if pair not in pairs:
            raise ServiceUnavailable(
                f"the Apertium pair {pair!r} is not installed (installed: "
                f"{', '.join(pairs) or 'none'}); install it with 'apt-get install "
                f"apertium-{pair}' (Debian/Ubuntu)")
        self.pair = pair
        self.binary = binary
        self.model = f"apertium:{pair}"
        self.batch_size = config.apertium_batch_size
        self.timeout = config.apertium_timeout_s

    def translate(self, sentences, target_lang, *, progress=None):
        if target_lang != self.target_lang:
            raise ConfigError(f"the Apertium pair {self.pair} translates into "
                              f"{self.target_lang}, not {target_lang}")
        return super().translate(sentences, target_lang, progress=progress)

    def misaligned_reason(self) -> str:
        return "Apertium lost this sentence's <p> block (output not aligned)"

    def _run(self, texts: list[str]) -> list[str] | None:
        payload = "".join(f"<p>{t}</p>\n" for t in texts)
        try:
            done = subprocess.run([self.binary, "-u", "-f", "html", self.pair], input=payload,
                                  capture_output=True, text=True, timeout=self.timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ServiceUnavailable(
                f"Apertium took longer than {self.timeout:.0f} s for {len(texts)} sentences; "
                "raise translation.apertium_timeout_s or lower apertium_batch_size") from None
        if done.returncode != 0:
            raise ServiceUnavailable(f"apertium {self.pair} failed (exit {done.returncode}): "
                                     f"{done.stderr.strip()[:500]}")
        blocks = _PARAGRAPH.findall(done.stdout)
        return blocks if len(blocks) == len(texts) else None

    def translate_texts(self, texts: list[str], target_lang: str) -> list[str | None]:
        blocks = self._run(texts)
        if blocks is not None:
            return list(blocks)
        if len(texts) == 1:
            return [None]
        half = len(texts) // 2
        return self.translate_texts(texts[:half], target_lang) + \
            self.translate_texts(texts[half:], target_lang)
