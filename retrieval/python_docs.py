"""The Python-docs FAQ benchmark: the Python docs as corpus, FAQ questions as queries.

Built from Debian's `python3.11-doc` reST sources. Every section (heading-split) of every page is
a corpus document; each FAQ question heading becomes a query whose one relevant document is the
section answering it. Section text excludes its heading, so a query never finds its own words.
"""

from __future__ import annotations

import json
from pathlib import Path

from retrieval.parsing import split_sections

DEFAULT_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")


def build_python_docs_benchmark(out_dir: Path, sources: Path = DEFAULT_SOURCES) -> dict[str, int]:
    """Write `corpus.jsonl` and `queries.jsonl` under `out_dir`; return their sizes."""
    if not sources.is_dir():
        raise FileNotFoundError(
            f"{sources} not found: install Debian's python3.11-doc (make python-docs does)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    documents, queries = [], []
    for page in sorted(sources.rglob("*.rst.txt")):
        relative = str(page.relative_to(sources))
        for number, section in enumerate(split_sections(page.read_text(), ".rst", relative)):
            doc_id = f"{relative}#{number}"
            documents.append({"id": doc_id, "title": section.heading, "text": section.text})
            if relative.startswith("faq/") and section.heading.rstrip().endswith("?"):
                queries.append({"query": section.heading.strip(), "relevant": [doc_id]})
    for name, rows in (("corpus.jsonl", documents), ("queries.jsonl", queries)):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
        tmp.replace(out_dir / name)
    return {"documents": len(documents), "queries": len(queries)}
