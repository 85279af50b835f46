"""The Data page's Translation tab: every backend with what it needs, checked before the
``translate`` run is queued (the worker runs it; :mod:`concner.jobs.translate`), with the
checks of :mod:`concner.translation.requests`.

:func:`backends` and :func:`request_options` hold the logic (no Streamlit, unit-tested);
:func:`translation_panel` draws the widgets.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concner.errors import ConcnerError, ConfigError
from concner.translation.langcodes import iso3
from concner.translation.requests import BACKENDS, SHARE, check_request

FILE_FORMAT = ('JSONL lines {"source_id", "text"} with the entities marked '
               '<b id="e1">…</b> (or "tokens" + "ner_tags"), or TSV')


@dataclass(frozen=True)
class Backend:
    name: str
    usable: bool  # installed here (apertium, dictionary) or needs only a form field
    detail: str   # what it offers, or what to install


def backends(config) -> dict[str, Backend]:
    """Every translation backend (in :data:`concner.translation.requests.BACKENDS` order),
    whether it can run here, and what it offers or how to install it."""
    found: dict[str, Backend] = {}
    if shutil.which("apertium") is None:
        found["apertium"] = Backend("apertium", False, "not installed: apt-get install "
                                    "apertium and a pair, e.g. apertium-eng-spa")
    else:
        from concner.translation.apertium import installed_pairs

        pairs = installed_pairs()
        found["apertium"] = Backend("apertium", bool(pairs), "pairs: " + ", ".join(pairs)
                                    if pairs else "no pairs installed: apt-get install "
                                    "apertium-eng-spa (or another pair)")
    folder = Path(config.translation.dictionary_dir)
    names = sorted(p.name[len("freedict-"):-len(".index")]
                   for p in folder.glob("freedict-*.index"))
    found["dictionary"] = Backend("dictionary", True, "FreeDict: " + ", ".join(names) if names
                                  else f"no FreeDict dictionaries in {folder}: apt-get install "
                                  "dict-freedict-eng-deu (or give their folder)")
    found["hf"] = Backend("hf", True, "a seq2seq model: a local folder or a hub id")
    found["file"] = Backend("file", True, "your own translations: a file on the server")
    return {name: found[name] for name in BACKENDS}


def request_options(backend: str, *, source_lang: str, target_lang: str, config,
                    pair: str = "", share: float | None = None, seed: int | None = None,
                    directory: str = "", model: str = "", translations: str = ""
                    ) -> dict[str, Any]:
    """The backend options to queue for the form's values, checked the way the run will
    use them; raises :class:`ConfigError` (or ``ServiceUnavailable``) saying what to fix."""
    tc = config.translation
    options: dict[str, Any] = {}
    if backend == "apertium":
        from concner.translation.apertium import installed_pairs

        options["pair"] = pair.strip() or f"{iso3(source_lang)}-{iso3(target_lang)}"
        pairs = installed_pairs()
        if options["pair"] not in pairs:
            raise ConfigError(f"Apertium pair: {options['pair']} is not installed here (there "
                              f"are: {', '.join(pairs) or 'none'}); install it with apt-get "
                              f"install apertium-{options['pair']}, or pick another backend")
    elif backend == "dictionary":
        folder = directory.strip() or tc.dictionary_dir
        options.update(directory=folder, share=tc.dictionary_share if share is None else share,
                       seed=tc.dictionary_seed if seed is None else int(seed))
        name = f"freedict-{iso3(source_lang)}-{iso3(target_lang)}"
        if Path(folder).is_dir() and not (Path(folder) / f"{name}.index").is_file():
            raise ConfigError(f"Dictionary folder: {folder} has no {name} dictionary; install "
                              f"it with apt-get install dict-{name}, give the folder that has "
                              "it, or pick another backend")
    elif backend == "hf":
        if not model.strip():
            raise ConfigError("Model: enter the folder of a saved seq2seq model (with its "
                              "config.json, e.g. models/opus-mt-en-de) or a hub id such as "
                              "Helsinki-NLP/opus-mt-en-de")
        options["model"] = model.strip()
    elif backend == "file":
        if not translations.strip():
            raise ConfigError("Translations file: enter the path on the server of your "
                              f"translations ({FILE_FORMAT})")
        options["translations"] = translations.strip()
    return check_request(backend, source_lang, target_lang, options)


def translation_panel(store, config, project) -> None:
    import streamlit as st

    from concner.jobs import queue as tasks
    from concner.ui.jobs import live_run_panel

    st.markdown("Translations with projected labels feed the translation-contrastive loss.")
    links = store.counts(project.name).get("translation_links", {})
    if links:
        st.write("Projection status of stored translations: "
                 + ", ".join(f"{k} {v}" for k, v in sorted(links.items())))
    try:
        found = backends(config)
    except ConcnerError as exc:  # e.g. `apertium -l` failed
        st.error(str(exc))
        return
    names = list(found)
    backend = st.selectbox("Backend", names, format_func=lambda b: f"{b} ({found[b].detail})",
                           index=next(i for i, b in enumerate(names) if found[b].usable))
    target = st.selectbox("Target language", list(project.target_langs), key="tr-target")
    tc = config.translation
    values: dict[str, Any] = {}
    if backend == "apertium":
        try:
            default = f"{iso3(project.source_lang)}-{iso3(target)} (from the languages)"
        except ConfigError:
            default = "e.g. eng-spa"
        values["pair"] = st.text_input("Apertium pair", key="tr-pair", placeholder=default)
    elif backend == "dictionary":
        c1, c2, c3 = st.columns([1, 1, 2])
        values["share"] = c1.number_input("Share of words replaced", float(SHARE.ge),
                                          float(SHARE.le),
                                          float(tc.dictionary_share), 0.05, key="tr-share")
        values["seed"] = c2.number_input("Seed", value=int(tc.dictionary_seed), step=1,
                                         key="tr-seed")
        values["directory"] = c3.text_input("Dictionary folder", tc.dictionary_dir,
                                            key="tr-directory")
    elif backend == "hf":
        values["model"] = st.text_input("Model folder (or hub id)", key="tr-model",
                                        placeholder="models/opus-mt-en-de")
    else:
        values["translations"] = st.text_input("Translations file (path on the server)",
                                               key="tr-file", help=FILE_FORMAT,
                                               placeholder="data/translations-de.jsonl")
    if not found[backend].usable:
        st.warning(f"{backend} cannot run here: {found[backend].detail}.")
    if st.button("Translate the source sentences", type="primary",
                 disabled=not found[backend].usable):
        try:
            options = request_options(backend, source_lang=project.source_lang,
                                      target_lang=target, config=config, **values)
            run_id = tasks.request_translate(store, project.name, backend=backend,
                                             target_lang=target, **options)
        except ConcnerError as exc:
            st.error(str(exc))
        else:
            st.success(f"Translation into {target} queued as run {run_id}.")
    live_run_panel(store, project.name, "translate")
