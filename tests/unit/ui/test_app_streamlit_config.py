"""The repository's .streamlit/config.toml: `streamlit run app.py` from the repository root
(scripts/run.sh, `concner up` there) hides Streamlit's developer menu (Deploy, Rerun)."""

from __future__ import annotations

import tomllib

from appkit import ROOT


def test_streamlit_reads_a_minimal_toolbar_from_the_repository(monkeypatch):
    from streamlit import config

    path = ROOT / ".streamlit" / "config.toml"
    assert tomllib.loads(path.read_text(encoding="utf-8"))["client"]["toolbarMode"] == "minimal"
    monkeypatch.chdir(ROOT)  # Streamlit looks for .streamlit/ where it is started
    try:
        config.get_config_options(force_reparse=True)
        assert config.get_option("client.toolbarMode") == "minimal"
        assert config.get_where_defined("client.toolbarMode") == str(path)
    finally:
        monkeypatch.undo()
        config.get_config_options(force_reparse=True)
