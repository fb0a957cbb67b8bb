"""Cut streaming model text into speakable pieces: sentences, or long clauses.

Speech for a piece starts as soon as the piece is complete, so the first piece may end at a clause
boundary (a comma after enough words) to start talking sooner.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s")
_CLAUSE_END = re.compile(r"[,;:—]\s")
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "e.g.", "i.e.", "etc.", "no.", "jr.", "sr."}


class SentenceChunker:
    """Accumulates deltas; `push` returns the pieces completed so far, `flush` the rest."""

    def __init__(self, *, first_clause_words: int = 5, clause_words: int = 12) -> None:
        self._buffer = ""
        self._emitted = 0
        self._first_clause_words = first_clause_words
        self._clause_words = clause_words

    def push(self, delta: str) -> list[str]:
        self._buffer += delta
        pieces: list[str] = []
        while True:
            piece = self._next_piece()
            if piece is None:
                return pieces
            pieces.append(piece)

    def flush(self) -> list[str]:
        rest = self._buffer.strip()
        self._buffer = ""
        if rest:
            self._emitted += 1
            return [rest]
        return []

    def _next_piece(self) -> str | None:
        for match in _SENTENCE_END.finditer(self._buffer):
            candidate = self._buffer[: match.end()]
            last_word = candidate.strip().rsplit(" ", 1)[-1].lower()
            if last_word in _ABBREVIATIONS or re.fullmatch(r"\d+\.", last_word):
                continue  # "Dr. Smith", "3. item": not a sentence end
            return self._take(match.end())
        min_words = self._first_clause_words if self._emitted == 0 else self._clause_words
        for match in _CLAUSE_END.finditer(self._buffer):
            if len(self._buffer[: match.start()].split()) >= min_words:
                return self._take(match.end())
        return None

    def _take(self, end: int) -> str | None:
        piece, self._buffer = self._buffer[:end].strip(), self._buffer[end:]
        if not piece:
            return None
        self._emitted += 1
        return piece
