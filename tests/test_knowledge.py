"""Knowledge bases with the fake embedder: add, dedupe, remove, search, persist, atomicity."""
import sqlite3

import pytest

from core.errors import StudioError
from core import index_cache
from core.catalogue import document_chunks, get_knowledge_base, list_documents, list_knowledge_bases
from core.chunking import ChunkingSettings, chunk_document
from core.index_cache import load_index
from core.ingest import ingest_files, remove_document
from core.retrieval import RetrievalSettings, search
from core.documents import extract_document
from core.vector_index import VectorIndexSettings
from tests.pdfs import make_pdf

ALPHA = "Alpha Corp sells industrial pumps. The pump warranty lasts five years. " * 6
BETA = "Beta Ltd bakes sourdough bread. The bakery opens at seven every morning. " * 6


ALPHA_PDF = make_pdf([ALPHA, "Alpha service centres are in Leeds and Lyon. " * 6])  # once: fpdf2 stamps the time into it


def files():
    return [("alpha.pdf", ALPHA_PDF), ("beta.txt", BETA.encode())]


def test_chunks_keep_document_pages():
    document = extract_document("a.pdf", make_pdf(["one " * 300, "two " * 300, "three " * 300]))
    chunks = chunk_document(document, ChunkingSettings(500, 50))
    assert {chunk.page for chunk in chunks} == {1, 2, 3}
    assert all(len(chunk.text) <= 500 for chunk in chunks)
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))


def test_ingest_search_and_cite(workspace, fake_embedder):
    results = ingest_files(workspace, "kb1", files(), fake_embedder)
    assert [r.status for r in results] == ["added", "added"]
    hits = search(workspace, "kb1", "when does the bakery open", fake_embedder, RetrievalSettings(k=3))
    assert hits[0].document == "beta.txt" and hits[0].page == 1 and 0 < hits[0].score <= 1.0001
    leeds = search(workspace, "kb1", "service centres Leeds", fake_embedder)[0]
    assert leeds.document == "alpha.pdf" and leeds.page_end == 2


def test_reupload_is_recognised(workspace, fake_embedder):
    ingest_files(workspace, "kb1", files(), fake_embedder)
    again = ingest_files(workspace, "kb1", [("renamed copy.pdf", files()[0][1])], fake_embedder)
    assert again[0].status == "duplicate" and "already in" in again[0].message
    assert len(list_documents(workspace, "kb1")) == 2


def test_a_bad_file_does_not_stop_the_batch(workspace, fake_embedder):
    batch = [("broken.pdf", b"%PDF-1.4 garbage"), ("empty.txt", b""), *files()]
    results = ingest_files(workspace, "kb1", batch, fake_embedder)
    assert [r.status for r in results] == ["failed", "failed", "added", "added"]
    assert "damaged" in results[0].message or "no page" in results[0].message
    assert "empty" in results[1].message


def test_remove_document_removes_vectors(workspace, fake_embedder, caplog):
    """The removed document's vectors leave the index file in place (no rebuild); a fresh load agrees with SQLite."""
    import logging

    ingest_files(workspace, "kb1", files(), fake_embedder)
    before = get_knowledge_base(workspace, "kb1")
    caplog.set_level(logging.INFO, logger="core.index_cache")
    removed = remove_document(workspace, "kb1", "beta.txt")
    assert "shrunk" in caplog.text
    index_cache._INDEX_CACHE.clear()  # as after a restart: the file on disk must verify
    after = get_knowledge_base(workspace, "kb1")
    assert removed > 0 and after.chunk_count == before.chunk_count - removed
    assert load_index(workspace, after).ntotal == after.chunk_count
    assert all(hit.document == "alpha.pdf" for hit in search(workspace, "kb1", "sourdough bakery", fake_embedder))


def test_add_later_keeps_existing_and_survives_restart(workspace, fake_embedder):
    ingest_files(workspace, "kb1", files()[:1], fake_embedder)
    ingest_files(workspace, "kb1", files()[1:], fake_embedder)
    index_cache._INDEX_CACHE.clear()  # as after a restart: read the FAISS file from disk
    kb = get_knowledge_base(workspace, "kb1")
    assert load_index(workspace, kb).ntotal == kb.chunk_count
    assert {d.name for d in list_documents(workspace, "kb1")} == {"alpha.pdf", "beta.txt"}


def test_stale_index_file_is_rebuilt_from_sqlite(workspace, fake_embedder):
    ingest_files(workspace, "kb1", files(), fake_embedder)
    kb = get_knowledge_base(workspace, "kb1")
    (workspace.indexes / str(kb.id) / "index.faiss").write_bytes(b"corrupt")
    (workspace.indexes / str(kb.id) / "manifest.json").write_text("{}")
    index_cache._INDEX_CACHE.clear()
    assert search(workspace, "kb1", "pump warranty", fake_embedder)[0].document == "alpha.pdf"


def test_failure_while_saving_leaves_catalogue_untouched(workspace, fake_embedder, monkeypatch):
    ingest_files(workspace, "kb1", files()[:1], fake_embedder)
    before = get_knowledge_base(workspace, "kb1")
    original = fake_embedder.embed_documents
    monkeypatch.setattr(fake_embedder, "embed_documents", lambda texts, progress=None: original(texts)[:0])  # wrong row count
    results = ingest_files(workspace, "kb1", files()[1:], fake_embedder)
    assert results[0].status == "failed"
    after = get_knowledge_base(workspace, "kb1")
    assert (after.chunk_count, after.document_count, after.version) == (before.chunk_count, before.document_count, before.version)


def test_same_name_different_content_gets_a_suffix(workspace, fake_embedder):
    ingest_files(workspace, "kb1", [("notes.txt", b"first version of the notes " * 5)], fake_embedder)
    ingest_files(workspace, "kb1", [("notes.txt", b"second version of the notes " * 5)], fake_embedder)
    assert [d.name for d in list_documents(workspace, "kb1")] == ["notes (2).txt", "notes.txt"]


def test_several_knowledge_bases_and_names(workspace, fake_embedder):
    ingest_files(workspace, "kb one", files()[:1], fake_embedder)
    ingest_files(workspace, "kb-two", files()[1:], fake_embedder)
    assert [kb.name for kb in list_knowledge_bases(workspace)] == ["kb one", "kb-two"]
    with pytest.raises(StudioError, match="not allowed"):
        ingest_files(workspace, "../escape", files(), fake_embedder)
    with pytest.raises(StudioError, match="No knowledge base named"):
        search(workspace, "missing", "q", fake_embedder)


def test_chunk_view(workspace, fake_embedder):
    ingest_files(workspace, "kb1", files(), fake_embedder)
    chunks = document_chunks(workspace, "kb1", "alpha.pdf")
    assert chunks and chunks[0].page == 1


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_ranking_mode_finds_the_document(workspace, fake_embedder, mode):
    ingest_files(workspace, "kb1", files(), fake_embedder)
    assert search(workspace, "kb1", "sourdough bread", fake_embedder, RetrievalSettings(k=2, mode=mode))[0].document == "beta.txt"


@pytest.mark.parametrize(
    "settings", [ChunkingSettings(50, 0), ChunkingSettings(500, 500), ChunkingSettings(500, -1)]
)
def test_impossible_chunking_is_refused(settings):
    with pytest.raises(StudioError):
        settings.validate()


def test_embedding_model_mismatch_is_explained(workspace, fake_embedder):
    ingest_files(workspace, "kb1", files(), fake_embedder)

    class Other(type(fake_embedder)):
        model_id = "other-model"

    with pytest.raises(StudioError, match="was built with"):
        search(workspace, "kb1", "pump", Other())


def test_no_pickle_files_in_workspace(workspace, fake_embedder):
    ingest_files(workspace, "kb1", files(), fake_embedder)
    assert not list(workspace.root.rglob("*.pkl")) and not list(workspace.root.rglob("*.pickle"))
    conn = sqlite3.connect(workspace.db_path)
    assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] > 0


def test_deleted_knowledge_base_leaves_no_stale_keyword_index(workspace, fake_embedder):
    from core.ingest import delete_knowledge_base

    ingest_files(workspace, "kb1", files()[1:], fake_embedder)  # beta only
    assert search(workspace, "kb1", "sourdough", fake_embedder, RetrievalSettings(k=1, mode="lexical"))[0].document == "beta.txt"
    delete_knowledge_base(workspace, "kb1")
    ingest_files(workspace, "kb1", files()[:1], fake_embedder)  # same name, likely the same id and version
    hits = search(workspace, "kb1", "service centres Leeds Lyon", fake_embedder, RetrievalSettings(k=3, mode="lexical"))
    assert hits and all(hit.document == "alpha.pdf" for hit in hits)  # a stale beta index finds no Leeds


def test_concurrent_ingests_into_one_new_knowledge_base_keep_every_file(workspace, fake_embedder):
    """Two ingests that both create 'race1' (as two `python -m core ingest ... --kb race1 &` do): both files go in."""
    import threading

    for trial in range(5):
        kb_name = f"race{trial}"
        outcomes: dict[str, list] = {}
        barrier = threading.Barrier(2)

        def ingest(name: str, text: str) -> None:
            barrier.wait()
            try:
                outcomes[name] = [r.status for r in ingest_files(workspace, kb_name, [(name, text.encode())], fake_embedder)]
            except Exception as error:  # the old race raised "already exists" here
                outcomes[name] = [repr(error)]

        threads = [threading.Thread(target=ingest, args=(f"{n}.txt", f"{n} is file {n} of trial {trial}. " * 20)) for n in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes == {"a.txt": ["added"], "b.txt": ["added"]}, outcomes
        assert sorted(d.name for d in list_documents(workspace, kb_name)) == ["a.txt", "b.txt"]


def test_concurrent_ingests_of_one_file_report_a_duplicate(workspace, fake_embedder):
    import threading

    statuses: list[str] = []
    barrier = threading.Barrier(2)

    def ingest() -> None:
        barrier.wait()
        statuses.extend(r.status for r in ingest_files(workspace, "same", [("a.txt", ALPHA.encode())], fake_embedder))

    threads = [threading.Thread(target=ingest) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == ["added", "duplicate"]
    assert len(list_documents(workspace, "same")) == 1


def test_knowledge_base_names_are_normalised_alike_for_lookup_and_creation(workspace, fake_embedder):
    ingest_files(workspace, "docugami", files()[1:], fake_embedder)
    assert get_knowledge_base(workspace, "docugami ").name == "docugami"
    results = ingest_files(workspace, " docugami ", [("alpha.txt", ALPHA.encode())], fake_embedder)
    assert [r.status for r in results] == ["added"]
    assert [kb.name for kb in list_knowledge_bases(workspace)] == ["docugami"]


def _documents_of(conn, chunk_ids):
    return {row["name"] for row in conn.execute(
        f"SELECT d.name FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({','.join('?' * len(chunk_ids))})", chunk_ids)}


def test_lexical_index_lives_on_disk_and_updates_incrementally(workspace, fake_embedder, caplog):
    """tantivy beside the FAISS file: a new process queries without building; add/remove touch only their document."""
    from core import lexical, lexical_index
    from core.catalogue import open_catalogue

    def top(query):
        lexical_index._CACHE.clear()  # as a new process would
        return lexical.top(workspace, conn, get_knowledge_base(workspace, "kb1"), query, 10)

    ingest_files(workspace, "kb1", files(), fake_embedder)
    conn = open_catalogue(workspace)
    caplog.set_level("INFO", logger="core.lexical_index")
    bakery = top("sourdough bakery")
    assert bakery and _documents_of(conn, bakery) == {"beta.txt"}
    assert not [r for r in caplog.records if r.name == "core.lexical_index"]  # the ingest left it up to date: no build at query time
    kb = get_knowledge_base(workspace, "kb1")
    assert lexical.known_terms(conn, kb.id, ["leeds", "lyon", "paris"]) == {"leeds", "lyon"}
    remove_document(workspace, "kb1", "beta.txt")
    assert "updated, 0 documents added, 1 removed" in caplog.text
    assert top("sourdough bakery") == []
    ingest_files(workspace, "kb1", [("gamma.txt", b"Gamma GmbH brews sourdough beer in Bremen. " * 10)], fake_embedder)
    assert "updated, 1 documents added, 0 removed" in caplog.text and "rebuilt" not in caplog.text
    gamma = top("sourdough")
    assert gamma and _documents_of(conn, gamma) == {"gamma.txt"}
    assert _documents_of(conn, top("pump warranty")) == {"alpha.pdf"}  # alpha's chunks are still indexed
    assert lexical.known_terms(conn, kb.id, ["bremen", "leeds", "sourdough"]) == {"bremen", "leeds", "sourdough"}
    conn.close()


def test_the_lexical_index_catches_up_with_the_catalogue_after_a_crash_or_damage(workspace, fake_embedder, caplog):
    """A commit in the catalogue the index never saw (a crash between the two), a damaged index folder, a lost stamp:
    the next search brings the index back to what the catalogue holds."""
    import shutil

    from core import lexical, lexical_index
    from core.catalogue import open_catalogue
    from core.storage import transaction

    ingest_files(workspace, "kb1", files(), fake_embedder)
    kb = get_knowledge_base(workspace, "kb1")
    folder = workspace.indexes / str(kb.id) / "lexical"
    with open_catalogue(workspace) as conn, transaction(conn):  # beta removed by a process that died before its sync
        beta = conn.execute("SELECT id FROM documents WHERE name = 'beta.txt'").fetchone()[0]
        lexical.remove_document(conn, kb.id, beta)
        conn.execute("DELETE FROM documents WHERE id = ?", (beta,))
        conn.execute("UPDATE knowledge_bases SET version = version + 1 WHERE id = ?", (kb.id,))
    lexical_index._CACHE.clear()
    assert search(workspace, "kb1", "sourdough bakery", fake_embedder, RetrievalSettings(mode="lexical", k=3)) == []
    assert search(workspace, "kb1", "pump warranty", fake_embedder, RetrievalSettings(mode="lexical", k=3))[0].document == "alpha.pdf"
    for damage in ("segments", "meta", "stamp", "garbled stamp"):
        lexical_index._CACHE.clear()
        if damage in ("segments", "meta"):  # new files in their place (a file changed under a live mapping would crash any reader)
            for path in folder.iterdir():
                if path.suffix in (".idx", ".pos", ".term", ".fieldnorm") if damage == "segments" else path.name == "meta.json":
                    path.unlink()
                    path.write_bytes(b"not an index")
        elif damage == "stamp":
            (folder / "stamp.json").unlink()
        else:
            (folder / "stamp.json").write_text('{"version": -1, "documents": {"1": "not:a:count"}}')
        lexical_index._CACHE.clear()
        caplog.clear()
        hits = search(workspace, "kb1", "pump warranty", fake_embedder, RetrievalSettings(mode="lexical", k=3))
        assert hits and hits[0].document == "alpha.pdf", damage
        assert ("rebuilt from the catalogue" in caplog.text) == (damage in ("segments", "meta")), damage  # a stamp: a plain rebuild
    shutil.rmtree(folder)
    lexical_index._CACHE.clear()
    assert search(workspace, "kb1", "pump warranty", fake_embedder, RetrievalSettings(mode="lexical", k=3))[0].document == "alpha.pdf"


def test_after_restoring_an_older_backup_the_indexes_follow_the_restored_rows(workspace, fake_embedder):
    """A restored backup is at an older version; the next ingest brings it back to a version number the indexes
    already saw, with other rows. The restore clears the indexes' stamps, so neither trusts the number alone."""
    from core.storage import list_backups, restore_catalogue

    ingest_files(workspace, "kb1", [("alpha.txt", b"Alpha pumps carry a warranty of two years. " * 10)], fake_embedder)
    older = list_backups(workspace)[0]
    ingest_files(workspace, "kb1", [("beta.txt", b"Beta bakes sourdough bread in Leeds. " * 10)], fake_embedder)
    version = get_knowledge_base(workspace, "kb1").version
    restore_catalogue(workspace, older)
    ingest_files(workspace, "kb1", [("gamma.txt", b"Gamma brews kombucha in Bremen. " * 10)], fake_embedder)
    assert get_knowledge_base(workspace, "kb1").version == version  # the same number, other rows
    for mode in ("lexical", "dense"):
        settings = RetrievalSettings(mode=mode, k=3, term_check=False)
        assert {h.document for h in search(workspace, "kb1", "kombucha Bremen", fake_embedder, settings)} <= {"alpha.txt", "gamma.txt"}
        assert search(workspace, "kb1", "kombucha Bremen", fake_embedder, settings)[0].document == "gamma.txt", mode
    assert search(workspace, "kb1", "sourdough Leeds", fake_embedder, RetrievalSettings(mode="lexical", k=3, term_check=False)) == []


def test_a_knowledge_base_from_before_the_lexical_index_gets_one_on_first_search(workspace, fake_embedder):
    import shutil

    from core import lexical, lexical_index
    from core.catalogue import open_catalogue

    ingest_files(workspace, "kb1", files(), fake_embedder)
    kb = get_knowledge_base(workspace, "kb1")
    with open_catalogue(workspace) as conn:
        lexical.drop_lexical_index(conn, kb.id)  # as a workspace made by an older version: no word counts, no tantivy index
    shutil.rmtree(workspace.indexes / str(kb.id) / "lexical")
    lexical_index._CACHE.clear()
    hits = search(workspace, "kb1", "sourdough bakery", fake_embedder, RetrievalSettings(mode="lexical", k=3))
    assert hits and hits[0].document == "beta.txt"


def test_an_fts5_index_from_the_previous_version_is_dropped_and_its_words_counted(workspace, fake_embedder):
    from core import lexical
    from core.catalogue import open_catalogue

    ingest_files(workspace, "kb1", files(), fake_embedder)
    kb = get_knowledge_base(workspace, "kb1")
    with open_catalogue(workspace) as conn:
        counts = _word_counts(conn, kb.id)
        lexical.drop_lexical_index(conn, kb.id)
        conn.execute(f"CREATE VIRTUAL TABLE lexical_{kb.id} USING fts5(text, content='chunks', content_rowid='id')")
        conn.execute(f"CREATE VIRTUAL TABLE lexical_{kb.id}_vocab USING fts5vocab(lexical_{kb.id}, 'row')")
    assert search(workspace, "kb1", "sourdough bakery", fake_embedder, RetrievalSettings(mode="lexical", k=3))[0].document == "beta.txt"
    with open_catalogue(workspace) as conn:
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'lexical_%' AND name NOT LIKE '%_terms'").fetchall()
        assert _word_counts(conn, kb.id) == counts


def _word_counts(conn, kb_id):
    return dict(conn.execute(f"SELECT term, chunks FROM lexical_{kb_id}_terms").fetchall())


def _word_counts_of_chunks(conn, kb_id):
    """The truth, counted from the chunk texts themselves."""
    from collections import Counter

    from core import lexical

    counts = Counter()
    for (text,) in conn.execute("SELECT text FROM chunks WHERE kb_id = ?", (kb_id,)):
        counts.update(set(lexical.tokenize(text)))
    return dict(counts)


def test_word_counts_follow_every_add_and_remove(workspace, fake_embedder):
    """The per-word chunk counts a query and the relevance gate read (lexical_<id>_terms, kept in ingest's transactions)
    equal a count over the chunks' own texts after adds, a removal, the drill's copy and an older base's upgrade."""
    from core import lexical
    from core.catalogue import open_catalogue
    from core.evaluation.drill import make_drill_copy

    ingest_files(workspace, "kb1", files(), fake_embedder)
    ingest_files(workspace, "kb1", [("gamma.txt", "Gamma GmbH brews sourdough beer in Bremen, Ünterföhring and Lyon. ".encode() * 10)],
                 fake_embedder)
    kb = get_knowledge_base(workspace, "kb1")
    with open_catalogue(workspace) as conn:
        counts = _word_counts(conn, kb.id)
        assert counts == _word_counts_of_chunks(conn, kb.id) and counts["sourdough"] >= 2 and "ünterföhring" in counts
    remove_document(workspace, "kb1", "beta.txt")
    with open_catalogue(workspace) as conn:
        counts = _word_counts(conn, kb.id)
        assert counts == _word_counts_of_chunks(conn, kb.id) and "bakery" not in counts
        assert lexical.chunk_counts(conn, kb.id, ["bakery", "bremen"]) == {"bremen": counts["bremen"]}
    copy = get_knowledge_base(workspace, make_drill_copy(workspace, "kb1"))
    with open_catalogue(workspace) as conn:
        assert _word_counts(conn, copy.id) == counts
        conn.execute(f"DROP TABLE lexical_{kb.id}_terms")  # a base made before the counts existed
    assert search(workspace, copy.name, "Bremen beer", fake_embedder, RetrievalSettings(mode="lexical", k=3))[0].document == "gamma.txt"
    search(workspace, "kb1", "sourdough", fake_embedder, RetrievalSettings(mode="lexical", k=3))
    with open_catalogue(workspace) as conn:
        assert _word_counts(conn, kb.id) == counts


def test_lexical_query_words_are_never_fts_operators(workspace, fake_embedder):
    ingest_files(workspace, "kb1", files(), fake_embedder)
    for query in ['pump" OR "x', "NEAR(pump warranty)", "pump AND NOT bread*", "^pump", "-pump", "warranty:"]:
        assert search(workspace, "kb1", query, fake_embedder, RetrievalSettings(mode="lexical", k=3))


def test_ingest_extends_the_vector_index_and_large_bases_switch_to_ivf(workspace, fake_embedder, monkeypatch, caplog):
    """A second ingest adds its vectors to the verified file (no rebuild); above flat_max_vectors the index is IVF,
    its recall@10 against exact search is measured into the manifest, and search still finds the right document;
    index_details reports what the Documents page shows."""
    import logging

    from core import vector_index
    from core.index_cache import index_details

    caplog.set_level(logging.INFO, logger="core.index_cache")
    ingest_files(workspace, "kb1", files()[:1], fake_embedder)
    ingest_files(workspace, "kb1", files()[1:], fake_embedder)
    assert "extended" in caplog.text
    kb = get_knowledge_base(workspace, "kb1")
    details = index_details(workspace, kb)
    assert details["vectors"] == kb.chunk_count and details["index_type"].startswith("flat") and details["memory_bytes"] > 0
    assert "fp16" in details["index_type"] and details["recall_at_10"] is None  # exhaustive: nothing to measure

    monkeypatch.setattr(vector_index, "VectorIndexSettings", _small_flat_limit)
    ingest_files(workspace, "kb1", [("gamma.txt", b"Gamma GmbH brews beer in Bremen. " * 40)], fake_embedder)
    kb = get_knowledge_base(workspace, "kb1")
    details = index_details(workspace, kb)
    assert details["index_type"].startswith("IVF") and details["recall_queries"] > 0
    assert 0.0 <= details["recall_at_10"] <= 1.0 and details["recall_goal"] == 0.95
    assert search(workspace, "kb1", "when does the bakery open", fake_embedder, RetrievalSettings(k=3, mode="dense"))[0].document == "beta.txt"


def _small_flat_limit():
    return VectorIndexSettings(flat_max_vectors=3)
