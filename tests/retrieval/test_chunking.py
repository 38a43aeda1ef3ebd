"""Parsing documents into sections and packing them into token-bounded chunks."""

import json

import pypdf
import pytest

from ragtune.retrieval.chunking import chunk_spans
from ragtune.retrieval.config import ChunkingConfig
from ragtune.retrieval.embed import resolve_model
from ragtune.retrieval.ingest import Chunker, document_format, find_documents
from ragtune.retrieval.markup import plain_text
from ragtune.retrieval.parsing import pdf_text, split_sections


def word_offsets(text):
    """Whitespace tokens with their character offsets (a stand-in tokenizer for spans)."""
    import re

    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def test_rst_sections_use_underlined_titles():
    text = "Top\n===\n\nintro text\n\nSub\n---\n\nbody here\n\n---------\n"
    sections = split_sections(text, ".rst", "page")
    assert [(s.heading, s.text.strip()) for s in sections] == [
        ("Top", "intro text"),
        ("Sub", "body here\n\n---------"),
    ]
    assert text[sections[1].start :].startswith(sections[1].text)


def test_markdown_headings_ignore_code_fences():
    text = "# A\none\n```\n# not a heading\n```\n## B\ntwo\n"
    sections = split_sections(text, ".md", "page")
    assert [s.heading for s in sections] == ["A", "B"]
    assert "# not a heading" in sections[0].text


def test_html_drops_scripts_and_splits_at_headings():
    html = "<h1>One</h1><p>alpha</p><script>var x</script><h2>Two</h2><p>beta</p>"
    sections = split_sections(html, ".html", "page")
    assert [(s.heading, s.text.strip()) for s in sections] == [("One", "alpha"), ("Two", "beta")]


def test_spans_respect_size_overlap_and_cover_text():
    text = " ".join(f"w{i}" for i in range(100))
    spans = list(chunk_spans(text, word_offsets(text), max_tokens=30, overlap_tokens=5))
    sizes = [len(text[s:e].split()) for s, e in spans]
    assert max(sizes) <= 30
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert text[start:end].split() == text[:end].split()[-5:]  # 5 words repeated


def test_spans_prefer_paragraph_breaks():
    text = " ".join(["a"] * 20) + "\n\n" + " ".join(["b"] * 20)
    spans = list(chunk_spans(text, word_offsets(text), max_tokens=30, overlap_tokens=0))
    assert text[spans[0][0] : spans[0][1]].split() == ["a"] * 20
    assert text[spans[1][0] : spans[1][1]].split() == ["b"] * 20


def test_overlap_must_be_below_size():
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkingConfig(max_tokens=32, overlap_tokens=32)


@pytest.fixture(scope="module")
def chunker():
    return Chunker(
        ChunkingConfig(max_tokens=24, overlap_tokens=4).model_dump(),
        resolve_model("all-MiniLM-L6-v2"),
    )


def test_chunker_keeps_source_heading_offsets(tmp_path, chunker):
    doc = tmp_path / "guide.md"
    text = "# Install\n\n" + "pip install ragtune now please. " * 12 + "\n# Use\n\nrun it.\n"
    doc.write_text(text)
    rows = list(chunker.chunk_file(str(doc)))
    assert len(rows) >= 3 and {r["heading"] for r in rows} == {"Install", "Use"}
    for row in rows:
        assert plain_text(text[row["start"] : row["end"]], ".md") == row["text"]
        assert row["source"] == str(doc) and row["doc_id"] == str(doc)
        assert len(chunker.tokenizer(row["text"], add_special_tokens=False)["input_ids"]) <= 24


def test_rst_renders_as_plain_text_keeping_code_and_arguments():
    rst = (
        ".. _intro:\n\n.. index::\n   single: open; built-in\n\n"
        "Use :func:`open` or :class:`buffers <io.BytesIO>` with ``mode='r'``; see :pep:`8`, *really*.\n"
        "For example::\n\n   def f(*args, **kwargs):\n       return a * b\n\n"
        ".. function:: open(file)\n   :noindex:\n\n   Open *file*.\n\n.. XXX a comment\n"
    )
    assert plain_text(rst, ".rst") == (
        "Use open or buffers with mode='r'; see PEP 8, really.\nFor example:\n\n"
        "   def f(*args, **kwargs):\n       return a * b\n\nopen(file)\n\n   Open file.\n\n"
    )
    assert plain_text(".. only:: html\n\n   Shown in HTML builds.\n", ".rst").split() == [
        "html",
        "Shown",
        "in",
        "HTML",
        "builds.",
    ]  # conditional content is content; raw output is not
    assert plain_text(".. raw:: html\n\n   <b>x</b>\n\nAfter.\n", ".rst") == "After.\n"


def test_markdown_renders_as_plain_text():
    md = "See [the docs](http://x) and ![a chart](c.png): `code`, **bold**, *em*, a * b.\n```py\nx = 1\n```\n"
    assert plain_text(md, ".md") == "See the docs and a chart: code, bold, em, a * b.\nx = 1\n"
    assert plain_text("*not* changed", ".txt") == "*not* changed"


def test_chunker_renders_markup_and_drops_markup_only_chunks(tmp_path, chunker):
    doc = tmp_path / "api.rst"
    text = "Title\n=====\n\n.. index:: single: spam\n\nCall :func:`spam` twice.\n\n"
    text += "Only\n====\n\n.. _target:\n"
    doc.write_text(text)
    rows = list(chunker.chunk_file(str(doc)))
    assert [(r["heading"], r["text"].strip()) for r in rows] == [("Title", "Call spam twice.")]
    assert "spam" in text[rows[0]["start"] : rows[0]["end"]]


def text_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    count = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, line in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R "
            "/Resources << /Font << /F1 3 0 R >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out, offsets = "%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n"
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return out.encode("latin-1")


def test_chunker_reads_pdf_text_by_page(tmp_path, chunker):
    doc = tmp_path / "manual.pdf"
    doc.write_bytes(text_pdf(["Ray Serve scales replicas.", "", "FAISS searches vectors fast."]))
    rows = list(chunker.chunk_file(str(doc)))
    assert [(r["heading"], r["text"].strip()) for r in rows] == [
        ("manual, page 1", "Ray Serve scales replicas."),
        ("manual, page 3", "FAISS searches vectors fast."),
    ]
    extracted = pdf_text(doc.read_bytes())
    assert all(extracted[r["start"] : r["end"]] == r["text"] for r in rows)


def test_chunker_jsonl_uses_id_and_title_fields(tmp_path, chunker):
    doc = tmp_path / "docs.jsonl"
    doc.write_text(
        json.dumps({"id": "d1", "title": "T", "text": "hello world"})
        + "\n\n"
        + json.dumps({"text": "second"})
        + "\n"
    )
    rows = list(chunker.chunk_file(str(doc)))
    assert [(r["doc_id"], r["heading"], r["text"]) for r in rows] == [
        ("d1", "T", "hello world"),
        (f"{doc}:3", "", "second"),
    ]


def test_bad_files_are_reported_not_fatal(tmp_path, chunker):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02")
    (tmp_path / "latin.txt").write_bytes(b"\xff\xfe caf\xe9")
    (tmp_path / "bad.jsonl").write_text('{"body": "no text field"}\n')
    (tmp_path / "list.jsonl").write_text('{"text": "fine"}\n["not", "an", "object"]\n')
    (tmp_path / "ok.txt").write_text("fine text")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (tmp_path / "scanned.pdf").write_bytes(text_pdf([""]))
    locked = pypdf.PdfWriter()
    locked.add_blank_page(612, 792)
    locked.encrypt("secret")
    locked.write(tmp_path / "locked.pdf")
    paths = [str(p) for p in find_documents([str(tmp_path)])]
    batch = chunker({"path": paths})
    reasons = dict(zip(batch["source"], batch["skipped"]))
    assert reasons[str(tmp_path / "ok.txt")] == ""
    assert reasons[str(tmp_path / "empty.txt")] == "no text"
    assert "binary" in reasons[str(tmp_path / "bin.txt")]
    assert "UnicodeDecodeError" in reasons[str(tmp_path / "latin.txt")]
    assert "no string field 'text'" in reasons[str(tmp_path / "bad.jsonl")]
    assert "line 2: not a JSON object" in reasons[str(tmp_path / "list.jsonl")]
    assert "unreadable PDF" in reasons[str(tmp_path / "broken.pdf")]
    assert reasons[str(tmp_path / "scanned.pdf")] == "no text"
    assert "encrypted PDF" in reasons[str(tmp_path / "locked.pdf")]


def test_find_documents_expands_dirs_and_globs(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.md", "sub/b.rst.txt", "sub/c.html", "d.pdf", "skip.pdfx"):
        (tmp_path / name).write_text("x")
    found = {p.name for p in find_documents([str(tmp_path)])}
    assert found == {"a.md", "b.rst.txt", "c.html", "d.pdf"}
    assert {p.name for p in find_documents([str(tmp_path / "sub" / "*.html")])} == {"c.html"}
    assert document_format("x/b.rst.txt") == ".rst"


def test_links_out_of_the_document_roots_are_skipped_unless_followed(tmp_path, capsys):
    corpus, outside = tmp_path / "corpus", tmp_path / "private"
    (corpus / "sub").mkdir(parents=True)
    (outside / "deep").mkdir(parents=True)
    (corpus / "own.md").write_text("x")
    (corpus / "sub" / "inner.md").write_text("x")
    (outside / "secret.md").write_text("x")
    (outside / "deep" / "more.md").write_text("x")
    (corpus / "leak.md").symlink_to(outside / "secret.md")
    (corpus / "linked").symlink_to(outside / "deep", target_is_directory=True)
    (corpus / "alias.md").symlink_to(corpus / "sub" / "inner.md")  # inside the root: kept

    def names(patterns, follow=False):
        return {p.name for p in find_documents(patterns, follow)}

    assert names([str(corpus)]) == {"own.md", "inner.md"}
    assert "leak.md" in capsys.readouterr().out
    assert names([f"{corpus}/**/*.md"]) == {"own.md", "inner.md"}  # glob's ** enters the link
    assert names([str(corpus)], follow=True) == {"own.md", "inner.md", "secret.md", "more.md"}
    assert names([str(corpus / "leak.md")]) == {"secret.md"}  # named itself: the user's choice


def test_over_size_files_are_reported_skips(tmp_path):
    chunker = Chunker(ChunkingConfig(max_file_mb=0.001).model_dump(), resolve_model("all-MiniLM-L6-v2"))
    (tmp_path / "big.txt").write_text("word " * 400)
    (tmp_path / "small.txt").write_text("word " * 100)
    batch = chunker({"path": [str(tmp_path / "big.txt"), str(tmp_path / "small.txt")]})
    reasons = dict(zip(batch["source"], batch["skipped"]))
    assert "over chunking.max_file_mb" in reasons[str(tmp_path / "big.txt")]
    assert reasons[str(tmp_path / "small.txt")] == ""
