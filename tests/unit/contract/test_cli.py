"""The `concner` command: discovery, help, and one-line errors with exit code 2."""

import subprocess
import sys

from concner.cli import build_parser, main


def test_help_lists_commands_and_runs_as_console_script():
    out = subprocess.run([sys.executable, "-m", "concner.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "COMMAND" in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_every_subcommand_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, subparser in sub.choices.items():
        assert subparser.format_help().strip(), name
