"""Chunking: a document's pages -> overlapping chunks that remember the pages they came from."""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from core.documents import ExtractedDocument
from core.errors import StudioError


@dataclass(frozen=True)
class ChunkingSettings:
    chunk_size: int = field(default=800, metadata={"help": "characters per chunk (~180 MiniLM tokens; its window is 256)"})
    chunk_overlap: int = field(default=100, metadata={"help": "characters shared by neighbouring chunks"})

    def validate(self) -> None:
        if not 100 <= self.chunk_size <= 8000:
            raise StudioError(f"Chunk size {self.chunk_size} is out of range; use 100 to 8000 characters.")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise StudioError(
                f"Chunk overlap {self.chunk_overlap} must be at least 0 and smaller than the chunk size ({self.chunk_size})."
            )


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int
    page_end: int
    ordinal: int


def chunk_document(document: ExtractedDocument, settings: ChunkingSettings) -> list[Chunk]:
    """Split the whole text (pages joined) with LangChain, and map each chunk back to its pages."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    settings.validate()
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap, add_start_index=True
    )
    starts: list[int] = []
    parts: list[str] = []
    offset = 0
    for page in document.pages:
        starts.append(offset)
        parts.append(page.text)
        offset += len(page.text) + 2
    full_text = "\n\n".join(parts)
    numbers = [page.number for page in document.pages]
    chunks = []
    for ordinal, piece in enumerate(splitter.create_documents([full_text])):
        start = piece.metadata["start_index"]
        end = start + len(piece.page_content) - 1
        first = numbers[max(0, bisect.bisect_right(starts, start) - 1)]
        last = numbers[max(0, bisect.bisect_right(starts, end) - 1)]
        chunks.append(Chunk(text=piece.page_content, page=first, page_end=last, ordinal=ordinal))
    return chunks
