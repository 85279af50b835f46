"""Language codes: ISO 639-1 (the project's) <-> ISO 639-3 (Apertium pairs, FreeDict
file names) and FLORES-200 (NLLB)."""

from __future__ import annotations

from concner.errors import ConfigError

#: ISO 639-3 (as used in Apertium pair names and FreeDict files) -> ISO 639-1.
ISO3_TO_1: dict[str, str] = {
    "afr": "af", "ara": "ar", "aze": "az", "bul": "bg", "ben": "bn", "cat": "ca",
    "ces": "cs", "dan": "da", "deu": "de", "ell": "el", "eng": "en", "epo": "eo",
    "spa": "es", "est": "et", "eus": "eu", "fas": "fa", "fin": "fi", "fra": "fr",
    "gle": "ga", "glg": "gl", "guj": "gu", "heb": "he", "hin": "hi", "hbs": "sh",
    "hun": "hu", "ind": "id", "isl": "is", "ita": "it", "jpn": "ja", "jav": "jv",
    "kat": "ka", "kaz": "kk", "kor": "ko", "lit": "lt", "mkd": "mk", "mal": "ml",
    "mar": "mr", "msa": "ms", "mya": "my", "nld": "nl", "nob": "nb", "oci": "oc",
    "pan": "pa", "pol": "pl", "por": "pt", "que": "qu", "ron": "ro", "rus": "ru",
    "swe": "sv", "swh": "sw", "swa": "sw", "tam": "ta", "tel": "te", "tgl": "tl",
    "tur": "tr", "ukr": "uk", "urd": "ur", "vie": "vi", "yor": "yo", "zho": "zh",
}
ISO1_TO_3: dict[str, str] = {}
for _three, _one in ISO3_TO_1.items():
    ISO1_TO_3.setdefault(_one, _three)

#: ISO 639-1 -> FLORES-200 codes used by NLLB.
FLORES: dict[str, str] = {
    "af": "afr_Latn", "ar": "arb_Arab", "az": "azj_Latn", "bg": "bul_Cyrl", "bn": "ben_Beng",
    "ca": "cat_Latn", "cs": "ces_Latn", "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn",
    "es": "spa_Latn", "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "fi": "fin_Latn",
    "fr": "fra_Latn", "gu": "guj_Gujr", "he": "heb_Hebr", "hi": "hin_Deva", "hu": "hun_Latn",
    "id": "ind_Latn", "it": "ita_Latn", "ja": "jpn_Jpan", "jv": "jav_Latn", "ka": "kat_Geor",
    "kk": "kaz_Cyrl", "ko": "kor_Hang", "lt": "lit_Latn", "ml": "mal_Mlym", "mr": "mar_Deva",
    "ms": "zsm_Latn", "my": "mya_Mymr", "nl": "nld_Latn", "pa": "pan_Guru", "pl": "pol_Latn",
    "pt": "por_Latn", "qu": "quy_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "sw": "swh_Latn",
    "ta": "tam_Taml", "te": "tel_Telu", "tl": "tgl_Latn", "tr": "tur_Latn", "uk": "ukr_Cyrl",
    "ur": "urd_Arab", "vi": "vie_Latn", "yo": "yor_Latn", "zh": "zho_Hans",
}


def iso1(code: str) -> str:
    """ISO 639-1 for a 639-3 code (or the code itself when it already is 639-1)."""
    if len(code) == 2:
        return code
    try:
        return ISO3_TO_1[code]
    except KeyError:
        raise ConfigError(f"unknown language code {code!r}; use ISO 639-1 (e.g. es) or "
                          "639-3 (e.g. spa)") from None


def iso3(code: str) -> str:
    """ISO 639-3 for a 639-1 code (or the code itself when it already is 639-3)."""
    if len(code) == 3:
        return code
    try:
        return ISO1_TO_3[code]
    except KeyError:
        raise ConfigError(f"no ISO 639-3 code known for {code!r}") from None


def split_pair(pair: str) -> tuple[str, str]:
    """``"eng-spa" -> ("en", "es")``; raises :class:`ConfigError` on a malformed pair."""
    parts = pair.split("-")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"language pair {pair!r} must look like eng-spa (source-target)")
    return iso1(parts[0]), iso1(parts[1].split("_")[0])
