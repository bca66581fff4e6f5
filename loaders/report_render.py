"""Render a report's content as one self-contained HTML page and as Markdown.

The HTML page embeds its pictures as base64 data URLs and its CSS inline: no scripts, fonts or
other requests, so it opens offline and can be mailed as one file. Tables scroll sideways and
pictures shrink on narrow (phone) screens.
"""

from __future__ import annotations

import base64
import html
import re

from loaders.report_content import Block, Cell, Paragraph, Picture, Report, Table, Verdict

CSS = """
:root { color-scheme: light; --pass: #1a7f37; --fail: #cf222e; --note: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2328; background: #f6f8fa; }
main { max-width: 1100px; margin: 0 auto; padding: 16px; }
header, section { background: #fff; border: 1px solid #d0d7de; border-radius: 8px;
  padding: 12px 16px; margin-bottom: 16px; }
h1 { font-size: 1.5em; margin: 0.2em 0; }
h2 { font-size: 1.2em; margin: 0.2em 0 0.6em; display: flex; gap: 0.5em; align-items: center;
  flex-wrap: wrap; }
.sub { color: #59636e; margin: 0 0 0.6em; overflow-wrap: anywhere; }
.summary { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 8px; }
.summary li { border: 1px solid #d0d7de; border-radius: 6px; padding: 4px 8px; }
.summary a { color: inherit; text-decoration: none; }
.note { border-left: 4px solid var(--note); padding: 4px 10px; background: #fff8c5; }
.badge { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: 0.85em;
  font-weight: 600; color: #fff; background: var(--note); white-space: nowrap; }
.badge.pass { background: var(--pass); }
.badge.fail { background: var(--fail); }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 0.5em 0 1em; }
table { border-collapse: collapse; font-size: 0.9em; min-width: 100%; }
th, td { border-bottom: 1px solid #d0d7de; padding: 4px 8px; text-align: left;
  vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 16em; }
th { background: #f6f8fa; }
figure { margin: 0.5em 0 1em; }
img { max-width: 100%; height: auto; display: block; }
figcaption { color: #59636e; font-size: 0.85em; }
code { background: #eff1f3; border-radius: 4px; padding: 0 4px; }
@media (max-width: 600px) {
  body { font-size: 14px; }
  main { padding: 8px; }
  header, section { padding: 8px 10px; }
}
"""
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escaped text with `code` spans as <code>."""
    return _CODE.sub(r"<code>\1</code>", html.escape(text))


def _badge(verdict: Verdict) -> str:
    kind = {True: " pass", False: " fail", None: ""}[verdict.passed]
    return f'<span class="badge{kind}">{html.escape(verdict.text)}</span>'


def _html_cell(cell: Cell, tag: str) -> str:
    if isinstance(cell, Verdict):
        return f"<{tag}>{_badge(cell)}</{tag}>"
    wrap = ' class="wrap"' if len(cell) > 40 else ""
    return f"<{tag}{wrap}>{_inline(cell)}</{tag}>"


def _html_block(block: Block, images: dict[str, bytes]) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(_html_cell(h, "th") for h in block.headers)
        body = "\n".join(
            "<tr>" + "".join(_html_cell(cell, "td") for cell in row) + "</tr>" for row in block.rows
        )
        return (
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>"
        )
    if block.name not in images:
        return f'<p class="note">Picture {html.escape(block.name)} could not be drawn.</p>'
    data = base64.b64encode(images[block.name]).decode("ascii")
    alt = html.escape(block.alt)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt}" '
        f'data-name="{html.escape(block.name)}"><figcaption>{alt}</figcaption></figure>'
    )


def render_html(report: Report, images: dict[str, bytes]) -> str:
    """The report as one HTML page with its PNG pictures embedded."""
    summary = "".join(
        f'<li><a href="#{section.anchor}">{html.escape(section.title)}</a> '
        f"{_badge(section.verdict)}</li>"
        for section in report.sections
        if section.verdict is not None
    )
    notes = "".join(f'<p class="note">{_inline(note)}</p>' for note in report.notes)
    sections = "\n".join(
        f'<section id="{section.anchor}"><h2>{html.escape(section.title)}'
        + (f" {_badge(section.verdict)}" if section.verdict else "")
        + "</h2>\n"
        + "\n".join(_html_block(block, images) for block in section.blocks)
        + "</section>"
        for section in report.sections
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(report.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<main>\n<header><h1>{html.escape(report.title)}</h1>\n<p class="sub">'
        f'{html.escape(report.subtitle)}</p>\n<ul class="summary">{summary}</ul>\n{notes}'
        f"</header>\n{sections}\n</main>\n</body>\n</html>\n"
    )


def _md_cell(cell: Cell) -> str:
    text = _md_verdict(cell) if isinstance(cell, Verdict) else cell
    return text.replace("|", "\\|").replace("\n", " ")


def _md_verdict(verdict: Verdict) -> str:
    return f"**{verdict.text}**" if verdict.passed is False else verdict.text


def _md_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Table):
        lines = [
            "| " + " | ".join(_md_cell(h) for h in block.headers) + " |",
            "|" + "---|" * len(block.headers),
        ]
        lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in block.rows]
        return "\n".join(lines)
    assert isinstance(block, Picture)
    return f"![{block.alt}]({block.name})"


def render_markdown(report: Report) -> str:
    """The report as Markdown; pictures are linked as the PNG files next to it."""
    parts = [f"# {report.title}", report.subtitle]
    parts.append(
        "\n".join(
            f"- [{section.title}](#{section.anchor}): {_md_verdict(section.verdict)}"
            for section in report.sections
            if section.verdict is not None
        )
    )
    parts += [f"> {note}" for note in report.notes]
    for section in report.sections:
        verdict = f" ({_md_verdict(section.verdict)})" if section.verdict else ""
        parts.append(f'<a id="{section.anchor}"></a>\n\n## {section.title}{verdict}')
        parts += [_md_block(block) for block in section.blocks]
    return "\n\n".join(parts) + "\n"
