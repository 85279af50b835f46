"""A translation request (backend, languages, the backend's options) and the one factory that
turns it into a :class:`~concner.translation.base.Translator`.

:func:`check_request` validates a request without loading anything (the app calls it
before queueing, :func:`check_project_request` for a project); :func:`open_translator`
builds the backend object from checked options (loads the engine, opens the cache);
:func:`make_translator` does both. The ``translate`` job (:mod:`concner.jobs.translate`),
the app (:mod:`concner.ui.translate`) and ``concner translate``
(:mod:`concner.commands.translate`, which checks its own flags) all make translators here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from concner.config import Config, TranslationConfig
from concner.errors import ConfigError
from concner.settings import setting_spec
from concner.translation.base import Translator

BACKENDS = ("apertium", "dictionary", "hf", "file")
#: options each backend accepts (anything else is a mistake the user should hear about)
OPTIONS = {
    "apertium": {"pair", "cache"},
    "dictionary": {"share", "seed", "directory"},
    "hf": {"model", "cache"},
    "file": {"translations"},
}
#: ``translation.dictionary_share``'s declaration: the range a dictionary share must be in
SHARE = setting_spec(TranslationConfig, "dictionary_share")


def check_request(backend: str, source_lang: str, target_lang: str,
                  options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate a request without loading anything (the app calls this before queueing);
    returns the options with the Apertium pair filled in. Raises :class:`ConfigError`."""
    from concner.translation.langcodes import iso3, split_pair

    options = dict(options or {})
    if backend not in BACKENDS:
        raise ConfigError(f"translation backend must be one of {', '.join(BACKENDS)}, "
                          f"got {backend!r}")
    unknown = sorted(set(options) - OPTIONS[backend])
    if unknown:
        raise ConfigError(f"the {backend} backend does not take {', '.join(unknown)}; it takes "
                          f"{', '.join(sorted(OPTIONS[backend]))}")
    if backend == "apertium":
        options.setdefault("pair", f"{iso3(source_lang)}-{iso3(target_lang)}")
        if split_pair(options["pair"])[1] != target_lang:
            raise ConfigError(f"Apertium pair {options['pair']} does not translate into "
                              f"{target_lang!r}")
    share = options.get("share")
    if share is not None and SHARE.problem(float(share)) is not None:
        raise ConfigError(f"dictionary share must be {SHARE.allowed()}, got {share}")
    if backend == "hf" and not options.get("model"):
        raise ConfigError("the hf backend needs model=<hub id or local folder>")
    if backend == "file" and not options.get("translations"):
        raise ConfigError("the file backend needs translations=<your JSONL or TSV file>")
    return check_paths(backend, options)


def check_paths(backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """Local files and folders the request names must exist (checked here, so a typo is
    reported before a run is queued or a model is loaded); they are made absolute, so the
    stored request means the same to a worker started elsewhere."""
    if backend == "file":
        path = Path(str(options["translations"])).expanduser()
        if not path.is_file():
            raise ConfigError(f"translations file {options['translations']} does not exist; "
                              "give the path of your JSONL or TSV translations")
        options["translations"] = str(path.resolve())
    if backend == "dictionary" and options.get("directory"):
        path = Path(str(options["directory"])).expanduser()
        if not path.is_dir():
            raise ConfigError(f"dictionary folder {options['directory']} does not exist; give "
                              "the folder with the freedict-*.index files (default "
                              "translation.dictionary_dir)")
        options["directory"] = str(path.resolve())
    if backend == "hf":
        model = str(options["model"])
        path = Path(model).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise ConfigError(f"{model} is not a model folder (no config.json in it); give "
                                  "a folder a seq2seq model was saved to, or a hub id")
            options["model"] = str(path.resolve())
        elif path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
            raise ConfigError(f"model folder {model} does not exist; give the folder of a "
                              "saved seq2seq model (e.g. opus-mt-en-de), or a hub id")
    return options


def check_project_request(store, name: str, backend: str, target_lang: str,
                          options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """:func:`check_request` for project ``name`` (which must translate into
    ``target_lang``); returns the project and the checked options."""
    project = store.get_project(name)
    if target_lang not in project.target_langs:
        raise ConfigError(f"project {name!r} translates into {', '.join(project.target_langs)}, "
                          f"not {target_lang!r}")
    return project, check_request(backend, project.source_lang, target_lang, options)


def open_translator(config: Config, backend: str, source_lang: str,
                    options: dict[str, Any]) -> Translator:
    """The backend object for checked ``options`` (loads the engine, opens the cache).

    ``options["cache"]``: a path, or true (the default: ``translation.cache_path``), or
    false (no cache); only the apertium and hf backends cache."""
    tc = config.translation
    cache = None
    if backend in ("apertium", "hf") and options.get("cache", True):
        from concner.translation.cache import TranslationCache

        cache = TranslationCache(options["cache"] if isinstance(options.get("cache"), str)
                                 else tc.cache_path)
    if backend == "apertium":
        from concner.translation.apertium import ApertiumTranslator

        return ApertiumTranslator(options["pair"], config=tc, cache=cache)
    if backend == "dictionary":
        from concner.translation.dictionary import DictionaryTranslator

        return DictionaryTranslator(source_lang, config=tc, share=options.get("share"),
                                    seed=options.get("seed"), directory=options.get("directory"))
    if backend == "hf":
        from concner.translation.hf import HFTranslator

        return HFTranslator(options["model"], source_lang=source_lang, config=tc, cache=cache)
    from concner.translation.file import FileTranslator

    return FileTranslator(options["translations"])


def make_translator(config: Config, backend: str, source_lang: str, target_lang: str,
                    options: dict[str, Any] | None = None) -> Translator:
    """The backend object for one request: :func:`check_request`, then
    :func:`open_translator`."""
    return open_translator(config, backend, source_lang,
                           check_request(backend, source_lang, target_lang, options))
