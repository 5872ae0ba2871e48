"""Issue 20: ``--config FILE`` (YAML or TOML, keys named as the flags) for search, retrain and
export; the command line wins; bad files exit 2 in one line before anything is created."""

from __future__ import annotations

import pytest

from nas_mnist.cli.config_file import expand_config
from nas_mnist.cli.main import build_parser, main
from nas_mnist.cli.search import settings_from_args

YAML = """\
trials: 12
max-train-samples: 2000
epochs: 3
storage: journal:///j.log
study_name: cfg
no-progress: true
allow-space-change: false
baselines: [s002_m1, s002_m9]
"""
TOML = """\
trials = 12
max_train_samples = 2000
epochs = 3
storage = "journal:///j.log"
study-name = "cfg"
no_progress = true
allow_space_change = false
baselines = ["s002_m1", "s002_m9"]
"""
FLAGS = ["--trials", "12", "--max-train-samples", "2000", "--epochs", "3", "--storage",
         "journal:///j.log", "--study-name", "cfg", "--no-progress", "--baselines",
         "s002_m1,s002_m9"]


def _settings(argv):
    parser = build_parser()
    return settings_from_args(parser.parse_args(expand_config(argv, parser)))


@pytest.mark.parametrize("name, text", [("c.yaml", YAML), ("c.toml", TOML)])
def test_a_config_file_gives_the_settings_its_flags_give(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    from_file = _settings(["search", "--config", str(tmp_path / name)])
    assert from_file == _settings(["search", *FLAGS])
    assert from_file.trials == 12 and from_file.max_train_samples == 2000
    assert from_file.baselines == "s002_m1,s002_m9" and from_file.progress is False


def test_the_command_line_wins_over_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text(YAML)
    settings = _settings(["-v", "search", "--epochs", "5", f"--config={tmp_path / 'c.yaml'}",
                          "--trials", "7"])
    assert (settings.epochs, settings.trials, settings.max_train_samples) == (5, 7, 2000)


@pytest.mark.parametrize("name, text, says", [
    ("c.yaml", "max-train-sample: 10\n", "'max-train-sample' is not a flag of this command "
                                          "(did you mean max-train-samples?)"),
    ("c.yaml", "trials: [1, 2\n", "not valid YAML"),
    ("c.toml", "trials = \n", "not valid TOML"),
    ("c.yaml", "- trials\n- 3\n", "expected a mapping of flags to values, got a list"),
    ("c.yaml", "no-progress: 'yes'\n", "write true or false"),
    ("c.json", "{}", "name a .yaml, .yml or .toml file"),
    ("missing.yaml", None, "cannot read it"),
])
def test_a_bad_config_file_exits_2_in_one_line_creating_nothing(tmp_path, capsys, monkeypatch,
                                                                name, text, says):
    monkeypatch.chdir(tmp_path)
    if text is not None:
        (tmp_path / name).write_text(text)
    before = set(tmp_path.iterdir())
    assert main(["search", "--config", name]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("nas-mnist search: error: --config ")
    assert says in error[0]
    assert set(tmp_path.iterdir()) == before


def test_a_wrong_value_is_refused_by_the_flags_own_check(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("trials: many\n")
    assert main(["search", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "--trials" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["retrain", "export"])
def test_retrain_and_export_take_a_config_file_too(tmp_path, command):
    (tmp_path / "c.toml").write_text('study-name = "cfg"\nstorage = "journal:///j.log"\n'
                                     + ('out = "best"\n' if command == "export" else ""))
    parser = build_parser()
    args = parser.parse_args(expand_config([command, "--config", str(tmp_path / "c.toml")],
                                           parser))
    assert (args.study_name, args.storage) == ("cfg", "journal:///j.log")


@pytest.mark.parametrize("given", [["--conf", "c.yaml"], ["--con=c.yaml"]])
def test_an_abbreviated_config_flag_is_read_not_ignored(tmp_path, monkeypatch, given):
    # argparse takes --conf for --config: the file must not be skipped silently
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(YAML)
    assert _settings(["search", *given]).trials == 12


@pytest.mark.parametrize("name, text, says", [
    ("c.yaml", "study-name:\n", "'study-name' has no value"),
    ("c.yaml", "storage: {url: x}\n", "'storage' takes a value or a list, not a mapping"),
])
def test_an_empty_or_nested_value_exits_2_in_one_line(tmp_path, capsys, monkeypatch, name,
                                                      text, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(text)
    assert main(["search", "--config", name]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and says in error[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_two_config_files_exit_2_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text("trials: 3\n")
    (tmp_path / "b.yaml").write_text("trials: 4\n")
    assert main(["search", "--config", "a.yaml", "--config", "b.yaml"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--config given twice" in error[0]


def test_a_value_that_starts_with_a_dash_is_a_value(tmp_path):
    (tmp_path / "c.yaml").write_text("study-name: -x\n")
    assert _settings(["search", "--config", str(tmp_path / "c.yaml")]).study_name == "-x"
