"""`retrieve`, the one retrieval call: its named steps, and another vector index entering through the VectorIndex seam."""
import numpy as np
import pytest

from core.catalogue import get_knowledge_base, open_catalogue
from core.retrieval import RetrievalSettings, fuse, relevant, retrieve, retrieve_many, search, search_many

QUESTIONS = ["Who was the chief engineer of the Harbor Bridge?", "When was the Golden Gate Bridge opened?",
             "Which family planted the oldest tree?"]
GATE = RetrievalSettings(k=3, min_score=0.05)


class NumpyIndex:
    """An exact inner-product index outside FAISS: what any other vector store has to answer."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray):
        self.ids, self.vectors, self.searched = ids, vectors, 0

    @classmethod
    def of(cls, workspace, kb_name: str, only_document: str | None = None) -> "NumpyIndex":
        kb = get_knowledge_base(workspace, kb_name)
        with open_catalogue(workspace) as conn:
            rows = conn.execute(
                "SELECT c.id, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id"
                " WHERE c.kb_id = ? AND (? IS NULL OR d.name = ?) ORDER BY c.id", (kb.id, only_document, only_document)
            ).fetchall()
        ids = np.array([row["id"] for row in rows], dtype=np.int64)
        return cls(ids, np.stack([np.frombuffer(row["embedding"], dtype=np.float32) for row in rows]))

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.searched += 1
        scores = vectors @ self.vectors.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        ids = self.ids[order]
        if ids.shape[1] < k:  # FAISS pads a short row with -1
            ids = np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)
        return np.take_along_axis(scores, order, 1), ids


def test_retrieve_is_search_then_the_gate(toy_kb, workspace, fake_embedder):
    found = retrieve_many(workspace, toy_kb, QUESTIONS, fake_embedder, GATE)
    ranked = search_many(workspace, toy_kb, QUESTIONS, fake_embedder, GATE)
    assert [r.ranked for r in found] == ranked
    assert [r.hits for r in found] == [relevant(hits, GATE) for hits in ranked]
    assert found[0].hits and found[0].hits[0].document == "harbor.txt"
    assert found[1].ranked and found[1].hits == []  # an unknown name: ranked, but refused by the gate
    assert retrieve(workspace, toy_kb, QUESTIONS[0], fake_embedder, GATE) == found[0].hits


def test_fusion_rewards_agreement_between_rankings():
    assert fuse([1, 2, 3], [2, 4, 5]) == [2, 1, 4, 3, 5]  # 2 is in both; then by rank, first ranking first on a tie
    assert fuse([5], []) == [5] and fuse() == []


def test_another_vector_index_enters_through_the_seam(toy_kb, workspace, fake_embedder):
    dense = RetrievalSettings(k=3, min_score=0.05, mode="dense")
    exact = NumpyIndex.of(workspace, toy_kb)
    assert search_many(workspace, toy_kb, QUESTIONS, fake_embedder, dense, index=exact) == search_many(
        workspace, toy_kb, QUESTIONS, fake_embedder, dense)  # the same ranking as the default FAISS flat index
    assert exact.searched == 1  # one batch for all questions
    orchard_only = NumpyIndex.of(workspace, toy_kb, only_document="orchard.txt")
    hits = search(workspace, toy_kb, QUESTIONS[0], fake_embedder, dense, index=orchard_only)
    assert hits and {h.document for h in hits} == {"orchard.txt"}  # the ranking really came from the given index


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
def test_modes_that_use_bm25_still_find_the_document_with_another_index(toy_kb, workspace, fake_embedder, mode):
    settings = RetrievalSettings(k=3, min_score=0.05, mode=mode)
    hits = retrieve(workspace, toy_kb, QUESTIONS[2], fake_embedder, settings, index=NumpyIndex.of(workspace, toy_kb))
    assert hits and hits[0].document == "orchard.txt"
