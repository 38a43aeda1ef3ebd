"""Index jobs on real Ray Data and FAISS: round trip, update, delete, and damage detection."""

import json
import shutil

import numpy as np
import pytest

from ragtune.core.artifacts import MANIFEST_FILE, IndexManifest
from ragtune.core.errors import ArtifactError, InputError
from ragtune.retrieval.config import EmbeddingConfig, IndexJobConfig
from ragtune.retrieval.embed import encode, load_encoder
from ragtune.retrieval.index import INDEX_FILE, load_index
from ragtune.retrieval.job import delete_sources, run_index_job
from ragtune.retrieval.search import Retriever
from tests.helpers import cross_encoder

DOCS = {
    "pasta.md": "# Cooking pasta\n\nBoil salted water and cook the pasta for ten minutes.\n",
    "faiss.rst": "FAISS\n=====\n\nFAISS searches dense vectors by similarity quickly.\n",
    "ray.txt": "Ray Data shards batch inference over a pool of actors.\n",
    "garden.html": "<h1>Roses</h1><p>Prune roses in late winter before new growth.</p>",
    "animals.jsonl": json.dumps({"id": "dog", "text": "Dogs are loyal companions."}) + "\n",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


def config(corpus, out, **index):
    return IndexJobConfig(
        documents=[str(corpus)],
        output_dir=out,
        index=index or {},
        chunking={"max_tokens": 64, "overlap_tokens": 8},
    )


@pytest.fixture(scope="module")
def built(ray_cluster, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "flat"
    result = run_index_job(config(corpus, out))
    return out, result


def test_round_trip_finds_the_right_document(built, corpus):
    out, result = built
    assert result.num_chunks == 5 and result.skipped == []
    manifest = IndexManifest.read(out)
    assert manifest.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest.num_documents == 5 and manifest.num_sources == 5
    assert manifest.index["type"] == "flat" and len(manifest.corpus_fingerprint) == 16
    assert manifest.config["documents"] == [str(corpus)] and manifest.versions["faiss-cpu"]
    hits = Retriever(out).search("how long should I boil spaghetti", k=2)
    assert hits[0].source == str(corpus / "pasta.md") and hits[0].heading == "Cooking pasta"
    assert hits[0].score > hits[1].score


def test_chunks_embedded_in_bfloat16_search_like_float32(built, corpus, tmp_path):
    out = tmp_path / "bf16"
    job = config(corpus, out).model_copy(update={"embedding": EmbeddingConfig(dtype="bfloat16")})
    run_index_job(job)
    query = "how long should I boil spaghetti"
    hits, reference = Retriever(out).search(query, k=5), Retriever(built[0]).search(query, k=5)
    assert [h.source for h in hits[:1]] == [h.source for h in reference[:1]] == [str(corpus / "pasta.md")]
    assert np.allclose([h.score for h in hits], [h.score for h in reference], atol=0.01)
    texts = list(DOCS.values())
    vectors = encode(load_encoder("all-MiniLM-L6-v2", dtype="bfloat16"), texts)
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert (vectors * encode(load_encoder("all-MiniLM-L6-v2"), texts)).sum(axis=1).min() > 0.99


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_agree_with_flat(built, corpus, tmp_path, kind):
    run_index_job(config(corpus, tmp_path / kind, type=kind))
    approx = Retriever(tmp_path / kind).search_batch(["vector similarity", "roses"], k=1)
    exact = Retriever(built[0]).search_batch(["vector similarity", "roses"], k=1)
    assert [h[0].doc_id for h in approx] == [h[0].doc_id for h in exact]


def test_bm25_and_hybrid_modes(built, corpus):
    retriever = Retriever(built[0])
    lexical = retriever.search("prune roses winter", k=3, mode="bm25")
    assert lexical[0].source == str(corpus / "garden.html")
    assert all(h.score > 0 for h in lexical)
    stemmed = retriever.search("pruning rose", k=3, mode="bm25")  # the text says "Prune roses"
    assert [h.source for h in stemmed] == [str(corpus / "garden.html")]
    hybrid = retriever.search("loyal dogs", k=3, mode="hybrid")
    assert hybrid[0].doc_id == "dog"
    with pytest.raises(ValueError, match="k must be"):
        retriever.search("x", k=0)


def test_model_mismatch_is_refused(built):
    with pytest.raises(ArtifactError, match="built with embedding model"):
        load_index(built[0], expect_model="sentence-transformers/all-mpnet-base-v2")


def test_update_embeds_only_changes_and_delete_by_source(ray_cluster, corpus, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(corpus, docs)
    out = tmp_path / "idx"
    run_index_job(config(docs, out))
    before = load_index(out)
    kept_id = before.chunks.filter(
        np.array([s.endswith("faiss.rst") for s in before.chunks["source"].to_pylist()])
    )["id"][0].as_py()

    (docs / "new.md").write_text("# Tea\n\nSteep green tea for two minutes.\n")
    (docs / "ray.txt").write_text("Ray Serve deploys models behind HTTP.\n")
    (docs / "pasta.md").unlink()
    result = run_index_job(config(docs, out), update=True)
    assert (result.added_sources, result.removed_sources) == (2, 1)
    after = load_index(out)
    assert after.index.ntotal == 5
    assert str(docs / "pasta.md") not in set(after.chunks["source"].to_pylist())
    assert kept_id in after.chunks["id"].to_pylist()  # unchanged file was not re-embedded
    top = Retriever(out).search("green tea", k=1)[0]
    assert top.source == str(docs / "new.md") and top.id >= before.manifest.next_id

    assert delete_sources(out, [str(docs / "new.md")]) == 1
    assert str(docs / "new.md") not in load_index(out).chunks["source"].to_pylist()


def test_hnsw_delete_rebuilds(ray_cluster, corpus, tmp_path):
    out = tmp_path / "hnsw"
    run_index_job(config(corpus, out, type="hnsw"))
    assert delete_sources(out, [str(corpus / "ray.txt")]) == 1
    hits = Retriever(out).search("actors batch inference", k=4)
    assert len(hits) == 4 and str(corpus / "ray.txt") not in {h.source for h in hits}


def test_corrupt_or_half_written_index_is_detected(built, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(built[0], damaged)
    with open(damaged / INDEX_FILE, "r+b") as handle:
        handle.seek(100)
        handle.write(b"garbage")
    with pytest.raises(ArtifactError, match="corrupt"):
        load_index(damaged)
    (damaged / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match="never finished"):
        load_index(damaged)


def test_failed_job_leaves_the_saved_index_untouched(built, tmp_path):
    saved = tmp_path / "saved"
    shutil.copytree(built[0], saved)
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    empty = tmp_path / "only-empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("   \n")
    with pytest.raises(InputError, match="no chunks"):
        run_index_job(config(empty, saved))
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rerank_keeps_the_cross_encoders_best_of_the_candidates(built, tmp_path):
    from sentence_transformers import CrossEncoder

    from ragtune.retrieval.config import RerankConfig

    out, _ = built
    model = cross_encoder(tmp_path / "ce")
    query = "how long should I boil spaghetti"
    plain = Retriever(out)
    candidates = plain.search(query, k=4)
    expected = CrossEncoder(str(model)).predict([(query, hit.text) for hit in candidates])
    best = sorted(zip(expected, candidates), key=lambda pair: -pair[0])[:2]

    reranking = Retriever(out, rerank=RerankConfig(model=str(model), candidates=4))
    hits = reranking.search(query, k=2)
    assert [hit.id for hit in hits] == [hit.id for _, hit in best]
    assert [hit.rerank_score for hit in hits] == pytest.approx([float(score) for score, _ in best], abs=1e-5)
    first_stage = {hit.id: hit.score for hit in candidates}
    assert all(hit.score == pytest.approx(first_stage[hit.id]) for hit in hits)  # both scores kept
    assert all(hit.rerank_score is None for hit in reranking.search(query, k=2, rerank=False))
    batch = reranking.search_batch([query, "pruning roses"], k=1, mode="hybrid")
    assert [len(hits) for hits in batch] == [1, 1] and batch[1][0].rerank_score is not None
    # Fused with a dominant first stage, the first stage's order stands; the model's scores ride along.
    by_model = {hit.id: float(score) for score, hit in zip(expected, candidates)}
    anchored = Retriever(out, rerank=RerankConfig(model=str(model), candidates=4, first_stage_weight=100))
    hits = anchored.search(query, k=4)
    assert [hit.id for hit in hits] == [hit.id for hit in candidates]
    assert [hit.id for hit in hits] != [hit.id for hit in reranking.search(query, k=4)]  # the test can fail
    assert [hit.rerank_score for hit in hits] == pytest.approx([by_model[hit.id] for hit in hits], abs=1e-5)


def test_a_cross_encoder_reads_its_own_length_within_its_positions(tmp_path):
    """The default `max_length`: the saved tokenizer's, which sentence-transformers caps at the
    position embeddings (ragtune relies on that cap for tokenizers saved without a limit)."""
    from ragtune.retrieval.rerank import load_cross_encoder

    model = cross_encoder(tmp_path / "ce")
    settings = model / "tokenizer_config.json"
    for saved, expected in ((200, 200), (10**30, 512)):  # 10**30: transformers' "no limit" placeholder
        settings.write_text(json.dumps({**json.loads(settings.read_text()), "model_max_length": saved}))
        assert load_cross_encoder(str(model), None, "cpu").max_seq_length == expected
    assert load_cross_encoder(str(model), 48, "cpu").max_seq_length == 48


def test_reciprocal_rank_fusion_weighs_each_ranking_by_rank():
    from ragtune.retrieval.fusion import reciprocal_rank_fusion

    fused = reciprocal_rank_fusion([(["a", "b", "c"], 1.0), (["c", "b"], 2.0)], k=2)
    # a: 1/61; b: 1/62 + 2/62; c: 1/63 + 2/61: c just ahead of b, a cut by k.
    assert [item for item, _ in fused] == ["c", "b"]
    assert [score for _, score in fused] == pytest.approx([1 / 63 + 2 / 61, 3 / 62])
    tied = reciprocal_rank_fusion([([2, 1], 1.0), ([1, 2], 1.0)], k=5)
    assert [item for item, _ in tied] == [2, 1]  # a tie keeps the order the rankings first name
