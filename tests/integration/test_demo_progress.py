"""`epochal demo` shows a rich progress bar per stage on a terminal (issue 19: "Progress bars
(rich) for each stage"), and none when its stderr is not a terminal (a log, a pipe).

The stages are swapped for quick ones that drive their meter as the real ones do (a total, steps,
a note); what is under test is the command's wiring of one bar per stage, titled "n/N title".
"""

from __future__ import annotations

import importlib
import io

import pytest
from rich.console import Console

from epochal.demo import Stage


def _stage(key: str, title: str, steps: int) -> Stage:
    def run(_run, meter) -> str:
        meter.total(steps)
        for i in range(steps):
            meter.note(f"step {i + 1}")
            meter.advance()
        return f"{key} did {steps} steps"
    return Stage(key, title, run)


STAGES = (_stage("alpha", "doing the first thing", 3), _stage("beta", "doing the second thing", 5),
          _stage("gamma", "writing the last thing", 2))


def _run_demo(tmp_path, monkeypatch, capsys, terminal: bool) -> tuple[str, str]:
    """(stdout, what the stage bars drew) of `epochal demo` with the quick stages."""
    # the modules as they are now (another test of the session may have imported them afresh)
    cli = importlib.import_module("epochal.cli")
    screen = io.StringIO()
    monkeypatch.setitem(cli.demo.__globals__, "DEMO_STAGES", STAGES)  # the command's own module globals
    monkeypatch.setitem(cli.demo.__globals__, "err", Console(file=screen, force_terminal=terminal, width=120,
                                                             color_system=None, highlight=False, markup=False))
    with pytest.raises(SystemExit) as done:
        cli.main(["demo", "--out", str(tmp_path / "out"), "--nodes", "5", "--hours", "2"])
    stdout = capsys.readouterr().out
    assert (done.value.code or 0) == 0, stdout + screen.getvalue()
    return stdout, screen.getvalue()


def test_each_stage_has_its_progress_bar_on_a_terminal(tmp_path, monkeypatch, capsys):
    stdout, screen = _run_demo(tmp_path, monkeypatch, capsys, terminal=True)
    for number, stage in enumerate(STAGES, 1):
        assert f"{number}/{len(STAGES)} {stage.title}" in screen, screen[-2000:]
    assert "3/3" in screen and "5/5" in screen and "2/2" in screen  # each bar ran to its total
    assert "step 5" in screen  # a stage's note shows on its bar
    for number, stage in enumerate(STAGES, 1):  # and the summary lines stay on stdout
        assert f"{number}. {stage.key} did" in stdout


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, capsys):
    stdout, screen = _run_demo(tmp_path, monkeypatch, capsys, terminal=False)
    assert screen == ""
    assert "1. alpha did 3 steps" in stdout
