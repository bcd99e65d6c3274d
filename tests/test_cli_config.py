"""`xsteer run` and `xsteer grid` take their options and defaults from TransferConfig: one definition."""

from dataclasses import asdict, fields

import pytest
import typer
from typer.testing import CliRunner

from xsteer import cli
from xsteer.pipeline import OPTION_HELP, TransferConfig


def _command(name: str):
    group = typer.main.get_command(cli.app)
    return group.commands[name]


def _cli_config(command, exclude=()) -> dict:
    """The config the command builds from its own defaults (what `--help` shows)."""
    defaults = {p.name: p.default for p in command.params}
    out = {}
    for f in fields(TransferConfig):
        if f.name in exclude:
            continue
        convert = cli._CLI_FORMS.get(f.name, (None, None, None))[2]
        out[f.name] = convert(defaults[f.name]) if convert else defaults[f.name]
    return out


def test_run_help_defaults_equal_transfer_config():
    built = TransferConfig(**_cli_config(_command("run")))
    assert asdict(built) == asdict(TransferConfig())


def test_grid_shares_every_cell_option_with_run():
    run, grid = _command("run"), _command("grid")
    cell = {f.name for f in fields(TransferConfig)} - {"parent", "child", "task", "fidelity"}
    by_name = lambda cmd: {p.name: p for p in cmd.params}  # noqa: E731
    for name in cell:
        a, b = by_name(run)[name], by_name(grid)[name]
        assert (a.opts, a.default, a.help) == (b.opts, b.default, b.help), name


def test_every_field_has_one_line_of_help():
    assert set(OPTION_HELP) == {f.name for f in fields(TransferConfig)}
    assert all(h.strip() and "\n" not in h for h in OPTION_HELP.values())


@pytest.mark.parametrize("args, field, value", [
    (["--k-shot", "2"], "k_shot", 2),
    (["--lambdas", "0.5,0.1"], "lambdas", [0.1, 0.5]),
    (["--mode", "loglik"], "task_mode", "loglik"),
    (["--no-child-own"], "child_own", False),
    (["--fidelity", "sentiment"], "fidelity", ["sentiment"]),
])
def test_options_reach_the_config(monkeypatch, args, field, value):
    seen = {}

    def fake_run_transfer(cfg, out, force=False):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr("xsteer.pipeline.run_transfer", fake_run_transfer)
    CliRunner().invoke(cli.app, ["run", *args])
    assert getattr(seen["cfg"], field) == value
