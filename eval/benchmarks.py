"""The Python-docs FAQ benchmark: the Python docs as corpus, FAQ questions as queries.

Built from Debian's `python3.11-doc` reST sources. Every section (heading-split) of every page is
a corpus document, rendered as plain text; each FAQ question heading becomes a query whose one
relevant document is the section answering it. Section text excludes its heading, so a query
never finds its own words. The same questions with a short plain-text answer (the section's
opening sentences) are the question/answer pairs of the demo's fine-tuning and answer evaluation.
"""

from __future__ import annotations

import re
from pathlib import Path

from ragtune.core.atomic import write_jsonl_atomic
from ragtune.core.errors import InputError
from ragtune.retrieval.markup import plain_text, rst_inline
from ragtune.retrieval.parsing import split_sections

DEFAULT_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
ANSWER_WORDS = 60


def build_python_docs_benchmark(out_dir: Path, sources: Path = DEFAULT_SOURCES) -> dict[str, int]:
    """Write `corpus.jsonl` and `queries.jsonl` under `out_dir`; return their sizes."""
    if not sources.is_dir():
        raise InputError(f"{sources} not found", "install Debian's python3.11-doc (make python-docs does)")
    out_dir.mkdir(parents=True, exist_ok=True)
    documents, queries, pairs = [], [], []
    for page in sorted(sources.rglob("*.rst.txt")):
        relative = str(page.relative_to(sources))
        for number, section in enumerate(split_sections(page.read_text(), ".rst", relative)):
            doc_id = f"{relative}#{number}"
            if not (text := plain_text(section.text, ".rst")).strip():
                continue  # only markup (index entries, targets)
            documents.append({"id": doc_id, "title": section.heading, "text": text})
            if relative.startswith("faq/") and section.heading.rstrip().endswith("?"):
                queries.append({"query": section.heading.strip(), "relevant": [doc_id]})
                if answer := short_answer(section.text):
                    pairs.append(
                        {
                            "id": doc_id,
                            "question": section.heading.strip(),
                            "answer": answer,
                            "sources": [doc_id],
                        }
                    )
    for name, rows in (("corpus.jsonl", documents), ("queries.jsonl", queries), ("faq.jsonl", pairs)):
        write_jsonl_atomic(out_dir / name, rows)
    return {"documents": len(documents), "queries": len(queries), "faq_pairs": len(pairs)}


def short_answer(text: str, max_words: int = ANSWER_WORDS) -> str:
    """The opening prose of a reST section as plain text: whole sentences up to `max_words`
    (at least one sentence); indented code blocks, directives and markup dropped."""
    words: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        if not block.strip() or block[0].isspace() or block.lstrip().startswith((".. ", ">>>", "$ ")):
            continue
        paragraph = rst_inline(" ".join(block.split()).replace("::", ":"))
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            if words and len(words) + len(sentence.split()) > max_words:
                return " ".join(words)
            words.extend(sentence.split())
    return " ".join(words)
