"""Issue 20: ``nas-mnist completion SHELL`` prints a completion script made by shtab from the
CLI's own parser (so it knows every command and flag)."""

from __future__ import annotations

import pytest

from nas_mnist.cli.main import main


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh"])
def test_the_script_knows_the_commands_and_their_flags(shell, capsys):
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "search" in script and "--sampler" in script and "tpe" in script
    if shell != "tcsh":  # shtab's tcsh script completes the choices only
        assert "retrain" in script and "--max-train-samples" in script
    if shell == "bash":
        assert "complete " in script  # registered with bash's `complete` builtin


def test_an_unknown_shell_exits_2_in_one_line(capsys):
    assert main(["completion", "fish"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert "invalid choice: 'fish'" in error[-1]
