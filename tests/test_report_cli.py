"""The command line around the report: documented commands, errors without tracebacks."""

from __future__ import annotations

import argparse

import pytest

from loaders.cli import _parser
from loaders.errors import ReportError
from loaders.report_content import Paragraph, Report, Section, Table, Verdict
from loaders.report_render import render_html, render_markdown
from loaders.settings import Paths


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_has_a_description_and_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = subcommands()
    assert {"report", "doctor", "build", "load", "summary"} <= set(commands)
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    top = capsys.readouterr().out
    assert "examples:" in top
    for name in ("init", "check", "load", "build", "report", "doctor", "sample"):
        assert f"  ciq {name} " in top, name
    assert "ciq build events --report" in top
    for name, sub in commands.items():
        assert sub.description, name
        text = sub.format_help()
        assert "examples:" in text, name
        assert f"ciq {name}" in text.split("examples:")[1], name
    assert "--report" in commands["build"].format_help()


def test_report_before_any_build_is_a_user_error_without_traceback(project: Paths, ciq) -> None:
    code, out, err = ciq("report", "events")
    assert code == 2
    assert err.startswith("ciq: error: ")
    assert "no warehouse yet; run `make all` or `ciq build`" in err
    assert "Traceback" not in err and out == ""
    with pytest.raises(ReportError):
        ciq("--debug", "report", "events")


def test_rendered_report_escapes_what_came_from_the_data() -> None:
    hostile = "<script>alert('x')</script> | pipe"
    report = Report(
        title="ciq diagnostics: t",
        subtitle="s",
        summary=(),
        notes=(),
        sections=(
            Section(
                "rows",
                "Rows",
                Verdict(False, "FAIL"),
                (Paragraph("see `code`"), Table(("raw_value",), ((hostile,),))),
            ),
        ),
    )
    page = render_html(report, {})
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<code>code</code>" in page
    markdown = render_markdown(report)
    assert "\\| pipe" in markdown  # a cell's pipe does not break the table
    assert "## Rows (**FAIL**)" in markdown
