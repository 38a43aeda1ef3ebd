"""Turn one document's text into sections (heading, body, offset) by its format's structure."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser

RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:._])\1{2,}\s*$")
MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Section:
    """A run of text under one heading; `start` is its offset in the source text."""

    heading: str
    text: str
    start: int


PAGE_BREAK = "\f"


def pdf_text(data: bytes) -> str:
    """The text layer of a PDF, pages separated by form feeds (as `pdftotext` writes them)."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
        pages = [] if encrypted else [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many types on malformed files; the job goes on
        raise ValueError(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
    if encrypted:
        raise ValueError("encrypted PDF")
    return PAGE_BREAK.join(pages)


def split_sections(text: str, suffix: str, default_heading: str) -> list[Section]:
    """Split `text` into sections by the headings of its format (.md, .rst, .html, else none);
    PDF text (from `pdf_text`) by page."""
    if suffix in (".html", ".htm"):
        return _html_sections(text, default_heading)
    if suffix == ".pdf":
        return _pages(text, default_heading)
    finder = {".md": _md_headings, ".rst": _rst_headings}.get(suffix)
    headings = finder(text) if finder else []
    sections, heading, body_start = [], default_heading, 0
    for start, end, title in headings:
        sections.append(Section(heading, text[body_start:start], body_start))
        heading, body_start = title, end
    sections.append(Section(heading, text[body_start:], body_start))
    return [s for s in sections if s.text.strip()]


def _pages(text: str, title: str) -> list[Section]:
    sections, start = [], 0
    for number, page in enumerate(text.split(PAGE_BREAK), start=1):
        if page.strip():
            sections.append(Section(f"{title}, page {number}", page, start))
        start += len(page) + len(PAGE_BREAK)
    return sections


def _md_headings(text: str) -> list[tuple[int, int, str]]:
    found, offset, in_fence = [], 0, False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (match := MD_HEADING.match(line)):
            found.append((offset, offset + len(line), match.group(2)))
        offset += len(line)
    return found


def _rst_headings(text: str) -> list[tuple[int, int, str]]:
    """reST titles: a text line underlined (optionally overlined) by a punctuation run."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    found = []
    for i in range(1, len(lines)):
        title = lines[i - 1].strip()
        if not title or not RST_UNDERLINE.match(lines[i]) or RST_UNDERLINE.match(lines[i - 1]):
            continue
        if len(lines[i].strip()) < len(title):
            continue
        has_overline = i >= 2 and RST_UNDERLINE.match(lines[i - 2])
        first = i - 2 if has_overline else i - 1
        found.append((starts[first], starts[i + 1], title))
    return found


class _HTMLSections(HTMLParser):
    """Collects visible text, starting a new section at each h1–h6."""

    SKIP = {"script", "style", "head", "nav"}

    def __init__(self, default_heading: str):
        super().__init__(convert_charrefs=True)
        self.sections: list[list[str]] = [[default_heading, ""]]
        self._skip_depth = 0
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip_depth += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._in_heading = True
            self.sections.append(["", ""])
        elif tag in ("p", "br", "li", "div", "pre", "tr"):
            self.sections[-1][1] += "\n\n"

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self._in_heading = False

    def handle_data(self, data):
        if self._skip_depth:
            return
        self.sections[-1][0 if self._in_heading else 1] += data


def _html_sections(text: str, default_heading: str) -> list[Section]:
    parser = _HTMLSections(default_heading)
    parser.feed(text)
    parser.close()
    sections, offset = [], 0
    for heading, body in parser.sections:
        body = re.sub(r"\n{3,}", "\n\n", body)
        if body.strip():
            sections.append(Section(heading.strip() or default_heading, body, offset))
        offset += len(body)  # offsets are into the extracted text, not the markup
    return sections
