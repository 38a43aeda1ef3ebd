"""A question's `sources` name the documents that answer it: an index's document ids, or a file's
name or path tail."""

from ragtune.retrieval.hit import from_sources


def test_sources_match_ids_and_path_tails_but_not_other_files():
    assert from_sources("faq/general.rst.txt#3", ["faq/general.rst.txt#3"])
    assert from_sources("/data/docs/guide.md", ["guide.md"]) and from_sources(
        "/data/docs/guide.md", ["docs/guide.md"]
    )
    assert from_sources("docs/guide.md", ["./docs/guide.md"])
    assert not from_sources("/data/docs/myguide.md", ["guide.md"])
    assert not from_sources("faq/general.rst.txt#3", ["faq/general.rst.txt#30", ""])
    assert not from_sources("anything", [])
