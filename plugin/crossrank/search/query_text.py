"""Find the natural-language query in an OpenSearch query DSL, for the cross-encoder.

Only clauses that contribute to relevance are read:

- full-text leaves: ``match``, ``match_phrase``, ``match_phrase_prefix``, ``match_bool_prefix``
  (``{"field": "text"}`` or ``{"field": {"query": "text"}}``), ``multi_match``,
  ``combined_fields``, ``query_string`` and ``simple_query_string`` (query syntax stripped, see
  ``strip_query_string``), ``intervals`` ``match`` rules, and ``neural`` / ``neural_sparse``
  (``{"field": {"query_text": ...}}``);
- compounds, through their scoring parts only: ``bool.must`` and ``bool.should`` (never
  ``filter`` or ``must_not``), ``dis_max.queries``, ``function_score.query``,
  ``script_score.query``, ``boosting.positive``, ``hybrid.queries``, ``nested.query``, and
  ``constant_score.filter``: a constant score query has nothing but its filter, so the text a
  user put there is the only statement of intent it has.

Not read: ``term``/``terms``/``prefix``/``wildcard``/``range`` and other exact-match leaves (ids,
keywords and codes are not natural language), ``knn`` (a vector), ``has_child``/``has_parent``
(their text describes other documents), ``more_like_this``.

Several texts are joined, in query order, with one space; repeats are dropped (a hybrid query
often sends the same text to BM25 and to the neural clause).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from crossrank.types import JSON

_MATCH_LEAVES = ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix")
_NEURAL_LEAVES = ("neural", "neural_sparse")
_MAX_DEPTH = 100


def extract_query_text(query: JSON) -> str | None:
    """The query text of a DSL query, or None when it has no full-text clause."""
    texts: dict[str, None] = {}  # a dict, not a list: "not in" on a list is quadratic
    for text in _texts(query, 0):
        text = " ".join(text.split())
        if text:
            texts.setdefault(text)
    return " ".join(texts) or None


def _texts(query: JSON, depth: int) -> Iterator[str]:
    if not isinstance(query, dict) or depth > _MAX_DEPTH:
        return
    for kind, spec in query.items():
        if kind in _MATCH_LEAVES:
            yield from _field_values(spec, "query")
        elif kind in _NEURAL_LEAVES:
            yield from _field_values(spec, "query_text")
        elif kind in ("multi_match", "combined_fields"):
            yield from _query_key(spec)
        elif kind == "query_string":
            yield from map(strip_query_string, _query_key(spec))
        elif kind == "simple_query_string":
            yield from map(strip_simple_query_string, _query_key(spec))
        elif kind == "intervals" and isinstance(spec, dict):
            for rule in spec.values():
                yield from _interval_texts(rule, depth + 1)
        elif isinstance(spec, dict):
            for key in _SCORING_PARTS.get(kind, ()):
                yield from _clauses(spec.get(key), depth + 1)


_SCORING_PARTS: dict[str, tuple[str, ...]] = {
    "bool": ("must", "should"),
    "dis_max": ("queries",),
    "hybrid": ("queries",),
    "function_score": ("query",),
    "script_score": ("query",),
    "boosting": ("positive",),
    "nested": ("query",),
    "constant_score": ("filter",),
}


def _clauses(value: JSON, depth: int) -> Iterator[str]:
    """One query or a list of queries (``bool.must`` takes either)."""
    for clause in value if isinstance(value, list) else [value]:
        yield from _texts(clause, depth)


def _field_values(spec: JSON, key: str) -> Iterator[str]:
    """``{"field": "text"}`` or ``{"field": {key: "text", ...}}``."""
    if not isinstance(spec, dict):
        return
    for value in spec.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict) and isinstance(value.get(key), str):
            yield value[key]


def _query_key(spec: JSON) -> Iterator[str]:
    if isinstance(spec, dict) and isinstance(spec.get("query"), str):
        yield spec["query"]


def _interval_texts(rule: JSON, depth: int) -> Iterator[str]:
    if not isinstance(rule, dict) or depth > _MAX_DEPTH:
        return
    match = rule.get("match")
    if isinstance(match, dict) and isinstance(match.get("query"), str):
        yield match["query"]
    for combined in ("all_of", "any_of"):
        group = rule.get(combined)
        if isinstance(group, dict) and isinstance(group.get("intervals"), list):
            for inner in group["intervals"]:
                yield from _interval_texts(inner, depth + 1)


# Escaped characters are literal text: they are swapped for private-use code points before the
# syntax is stripped, and swapped back afterwards.
_PRIVATE = 0xF0000
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_UNESCAPE = re.compile("[\U000f0000-\U000ffffd]")
_TERM_START = r"(?<![^\s(])"
_TERM = r"(?:\"[^\"]*\"?|\([^()]*\)?|[^\s()]+)"
_FIELD = r"(?:[\w.*@-]+:)"
# Every pattern runs in time linear in the text, whatever the client sends: a field name is tried
# only where a run of name characters starts (tried inside a long word, each start would scan to
# the word's end), and a bracket is read once, up to its first closing bracket.
_FIELD_START = r"(?<![\w.*@-])"
_BRACKET = re.compile(
    r"(?:" + _FIELD_START + _FIELD + r"\s*)?[\[{](?P<inside>[^\]}]*)(?P<close>[\]}])?")
_TO = re.compile(r"\bTO\b")


def _range(match: re.Match[str]) -> str:
    """A range (``field:[a TO b]``, ``{a TO *]``) goes; any other bracket stays for now."""
    if match.group("close") and _TO.search(match.group("inside")):
        return " "
    return match.group(0)


_Drop = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]
_LUCENE_DROP: list[_Drop] = [
    (re.compile(r"_exists_:\S+"), " "),
    # ranges: field:[a TO b], {a TO *], field:>=10
    (_BRACKET, _range),
    (re.compile(_FIELD_START + _FIELD + r"\s*[<>]=?\s*[^\s()]+"), " "),
    # regular expressions: /joh?n/
    (re.compile(_TERM_START + _FIELD + r"?/[^/]*/"), " "),
    # negated terms: their words say what the user does NOT want
    (re.compile(r"(?:" + _TERM_START + r"[-!]|(?<![\w])NOT\s+)" + _FIELD + r"?" + _TERM), " "),
    (re.compile(_TERM_START + _FIELD), " "),
    (re.compile(r"(?<![\w])(?:AND|OR|NOT)(?![\w])|&&|\|\|"), " "),
    (re.compile(r"[\^~][\d.]*"), " "),
]
_SIMPLE_DROP: list[_Drop] = [
    (re.compile(_TERM_START + r"-" + _TERM), " "),
    (re.compile(r"~[\d.]*"), " "),
]
_LUCENE_WILDCARDS = re.compile(r"[*?]")
_SIMPLE_WILDCARDS = re.compile(r"\*")
_LUCENE_PUNCTUATION = re.compile(r"[\"()\[\]{}+|!^~:\\/]|(?<!\S)-(?!\S)")
_SIMPLE_PUNCTUATION = re.compile(r"[\"()+|~\\]|(?<!\S)-(?!\S)")


def strip_query_string(text: str) -> str:
    """Plain words of a Lucene ``query_string`` (also the ``?q=`` parameter).

    Field prefixes, AND/OR/NOT, ``+``/``-``/``!``, quotes, groups, ``~N``, ``^N`` and wildcards
    go; negated terms, ranges, regular expressions and ``_exists_`` go with their words.
    """
    return _strip(text, _LUCENE_DROP, _LUCENE_WILDCARDS, _LUCENE_PUNCTUATION)


def strip_simple_query_string(text: str) -> str:
    """Plain words of a ``simple_query_string``: ``+ | - " * ( ) ~N`` and negated terms go."""
    return _strip(text, _SIMPLE_DROP, _SIMPLE_WILDCARDS, _SIMPLE_PUNCTUATION)


def _strip(text: str, drops: list[_Drop], wildcards: re.Pattern[str],
           punctuation: re.Pattern[str]) -> str:
    text = _UNESCAPE.sub("", text)
    text = _ESCAPE.sub(_hide, text)
    for pattern, replacement in drops:
        text = pattern.sub(replacement, text)
    text = wildcards.sub("", text)
    text = punctuation.sub(" ", text)
    text = _UNESCAPE.sub(_reveal, text)
    return " ".join(text.split())


def _hide(match: re.Match[str]) -> str:
    char = match.group(1)
    return chr(_PRIVATE + ord(char)) if ord(char) < 0xFFFE else char


def _reveal(match: re.Match[str]) -> str:
    return chr(ord(match.group(0)) - _PRIVATE)
