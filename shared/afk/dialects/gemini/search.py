"""Grounding with Google Search: the `googleSearch` tool and the `groundingMetadata`
it puts on a candidate, to and from the IR's web searches and citations.

Wire format (https://ai.google.dev/gemini-api/docs/google-search, and google-genai's
`GroundingMetadata` type): `webSearchQueries` (the queries the model ran),
`groundingChunks: [{"web": {"uri", "title"}}]` (the sources), `groundingSupports:
[{"segment": {"startIndex", "endIndex", "text"}, "groundingChunkIndices": [...]}]`
(which spans of the answer rest on which sources; offsets in UTF-8 bytes of the
answer's text, the IR's in characters) and
`searchEntryPoint.renderedContent` (a search-suggestions widget). In a stream it
comes with the last chunks. Each query is a search (Gemini 3 bills per query,
Gemini 2.x per grounded request: the catalog says which).
"""

from __future__ import annotations

from typing import Any

from afk import ir

SEARCH_TOOLS = ("googleSearch", "googleSearchRetrieval")


def is_search_tool(tool: Any) -> bool:
    return isinstance(tool, dict) and any(k in tool for k in SEARCH_TOOLS)


def render_tool() -> dict[str, Any]:
    return {"googleSearch": {}}


def _chars(text: str, offset: Any) -> int | None:
    """A byte offset into `text` as a character offset."""
    if not isinstance(offset, int):
        return None
    return len(text.encode()[:offset].decode(errors="ignore"))


def _bytes(text: str, offset: int | None) -> int | None:
    return None if offset is None else len(text[:offset].encode())


def parse(metadata: Any, response_id: str, text: str = "") -> tuple[list[ir.WebSearchCall],
                                                                    list[ir.Citation]]:
    """(searches, citations) of a candidate's groundingMetadata; `text` is the answer
    its offsets count bytes of."""
    if not isinstance(metadata, dict):
        return [], []
    chunks = [c.get("web") or {} for c in metadata.get("groundingChunks") or []
              if isinstance(c, dict)]
    sources = [ir.Source(url=str(c.get("uri") or ""), title=c.get("title")) for c in chunks]
    queries = [q for q in metadata.get("webSearchQueries") or [] if isinstance(q, str)]
    calls = [ir.WebSearchCall(id=f"ws_{response_id}_{i}", query=query,
                              sources=sources if i == 0 else [])
             for i, query in enumerate(queries)]
    citations: list[ir.Citation] = []
    for support in metadata.get("groundingSupports") or []:
        if not isinstance(support, dict):
            continue
        segment = support.get("segment") or {}
        for k in support.get("groundingChunkIndices") or []:
            if isinstance(k, int) and 0 <= k < len(sources):
                citations.append(ir.Citation(
                    url=sources[k].url, title=sources[k].title, cited_text=segment.get("text"),
                    start=_chars(text, segment.get("startIndex", 0)),
                    end=_chars(text, segment.get("endIndex"))))
    return calls, citations


def render(calls: list[ir.WebSearchCall], citations: list[ir.Citation],
           text: str = "") -> dict[str, Any]:
    """groundingMetadata for the searches and citations of an answer whose text is
    `text`."""
    sources: list[ir.Source] = []
    seen: dict[str, int] = {}

    def chunk(url: str, title: str | None) -> int:
        if url not in seen:
            seen[url] = len(sources)
            sources.append(ir.Source(url=url, title=title))
        return seen[url]

    for call in calls:
        for source in call.sources:
            chunk(source.url, source.title)
    supports = []
    for citation in citations:
        segment: dict[str, Any] = {"text": citation.cited_text or ""}
        if citation.start is not None:
            segment["startIndex"] = _bytes(text, citation.start)
        if citation.end is not None:
            segment["endIndex"] = _bytes(text, citation.end)
        supports.append({"segment": segment,
                         "groundingChunkIndices": [chunk(citation.url, citation.title)]})
    return {"webSearchQueries": [c.query for c in calls],
            "groundingChunks": [{"web": {"uri": s.url, "title": s.title or s.url}}
                                for s in sources],
            "groundingSupports": supports}
