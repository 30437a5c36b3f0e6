"""A small, safe Markdown subset for guidelines: headings, lists, paragraphs, **bold**, *italic*,
`code` and http(s) links. The text is HTML-escaped first, so nothing an admin writes can run."""

from __future__ import annotations

import html
import re

_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\((https?://[^\s)]+)\)"),
     r'<a href="\2" rel="noopener noreferrer" target="_blank">\1</a>'),
]


def _inline(text: str) -> str:
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def render(md: str) -> str:
    out: list[str] = []
    para: list[str] = []
    list_tag: str | None = None

    def close_para():
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    def close_list():
        nonlocal list_tag
        if list_tag:
            out.append(f"</{list_tag}>")
            list_tag = None

    for raw in html.escape(md, quote=True).splitlines():
        line = raw.rstrip()
        heading = re.match(r"^(#{1,4})\s+(.*)$", line)
        bullet = re.match(r"^\s*[-*+]\s+(.*)$", line)
        numbered = re.match(r"^\s*\d+[.)]\s+(.*)$", line)
        if heading:
            close_para(), close_list()
            level = len(heading.group(1)) + 1  # the page has the h1
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet or numbered:
            close_para()
            tag = "ul" if bullet else "ol"
            if list_tag != tag:
                close_list()
                out.append(f"<{tag}>")
                list_tag = tag
            out.append(f"<li>{_inline((bullet or numbered).group(1))}</li>")
        elif not line.strip():
            close_para(), close_list()
        elif list_tag and raw.startswith(("  ", "\t")) and out[-1].endswith("</li>"):
            out[-1] = out[-1][:-5] + " " + _inline(line.strip()) + "</li>"
        else:
            close_list()
            para.append(line.strip())
    close_para(), close_list()
    return "\n".join(out)
