"""The client's ``_source`` filter: read it, widen it to fetch the text to score, restore it.

Filtering follows OpenSearch's ``XContentMapValues.filter`` rule for rule: patterns match full
dotted paths, ``*`` is the only wildcard (it matches dots too), a pattern that matches an object
keeps all of it, a pattern ``a`` also matches a key spelled ``"a.b"``, and excludes win over
includes. So applying the client's filter to a widened ``_source`` gives what OpenSearch would
have returned for the client's own request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from crossrank.types import JSON, JSONObject

SOURCE_PARAMS = ("_source", "_source_includes", "_source_excludes")

_State = frozenset[tuple[int, int]]


@dataclass(frozen=True)
class SourceFilter:
    """What ``_source`` to return: ``fetch=False`` drops it, else includes (empty: all) minus
    excludes."""

    fetch: bool = True
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @property
    def is_everything(self) -> bool:
        return self.fetch and not self.includes and not self.excludes

    def to_json(self) -> JSON:
        if not self.fetch:
            return False
        out: JSONObject = {}
        if self.includes:
            out["includes"] = list(self.includes)
        if self.excludes:
            out["excludes"] = list(self.excludes)
        return out or True


class InvalidSourceFilter(ValueError):
    """A ``_source`` value OpenSearch would refuse; the request is left for it to answer."""


def parse_source_filter(body_source: JSON, params: Sequence[tuple[str, str]],
                        *, stored_fields: bool = False) -> SourceFilter:
    """The filter OpenSearch applies: URL parameters, when any is given, replace the body's.

    With ``stored_fields`` requested and no explicit ``_source``, OpenSearch returns no source.
    """
    given = {key: value for key, value in params if key in SOURCE_PARAMS}
    if given:
        return _from_params(given)
    if body_source is None:
        return SourceFilter(fetch=not stored_fields)
    if isinstance(body_source, bool):
        return SourceFilter(fetch=body_source)
    if isinstance(body_source, str | list):
        return SourceFilter(includes=_patterns(body_source))
    if isinstance(body_source, dict):
        includes: tuple[str, ...] = ()
        excludes: tuple[str, ...] = ()
        for key, value in body_source.items():
            if key in ("includes", "include"):
                includes = _patterns(value)
            elif key in ("excludes", "exclude"):
                excludes = _patterns(value)
            else:
                raise InvalidSourceFilter(f"unknown _source key {key!r}")
        return SourceFilter(includes=includes, excludes=excludes)
    raise InvalidSourceFilter("_source must be a boolean, a string, a list or an object")


def _from_params(given: dict[str, str]) -> SourceFilter:
    fetch = True
    includes: tuple[str, ...] = ()
    source = given.get("_source")
    if source == "true":
        pass
    elif source == "false":
        fetch = False
    elif source is not None:
        includes = _split(source)
    if "_source_includes" in given:
        includes = _split(given["_source_includes"])
    return SourceFilter(fetch, includes, _split(given.get("_source_excludes", "")))


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _patterns(value: JSON) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise InvalidSourceFilter("_source patterns must be strings")


class Globs:
    """OpenSearch's source-filter automaton: ``*`` globs, each also matching ``pattern.*``.

    A state is the set of live (pattern, position) pairs; the empty set is dead. Steps are
    cached per instance, so an instance lives as long as one request.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self._patterns = tuple(p for pattern in patterns for p in (pattern, pattern + ".*"))
        self.start = self._closure((i, 0) for i in range(len(self._patterns)))
        self._steps: dict[tuple[_State, str], _State] = {}

    def _closure(self, states: Iterable[tuple[int, int]]) -> _State:
        out = set()
        for index, pos in states:
            pattern = self._patterns[index]
            out.add((index, pos))
            while pos < len(pattern) and pattern[pos] == "*":
                pos += 1
                out.add((index, pos))
        return frozenset(out)

    def step(self, state: _State, text: str) -> _State:
        cached = self._steps.get((state, text))
        if cached is not None:
            return cached
        current = state
        for char in text:
            if not current:
                break
            following = []
            for index, pos in current:
                pattern = self._patterns[index]
                if pos < len(pattern) and pattern[pos] in ("*", char):
                    following.append((index, pos if pattern[pos] == "*" else pos + 1))
            current = self._closure(following)
        self._steps[(state, text)] = current
        return current

    def accepts(self, state: _State) -> bool:
        return any(pos == len(self._patterns[index]) for index, pos in state)

    def matches(self, path: str) -> bool:
        return self.accepts(self.step(self.start, path))


def covers(flt: SourceFilter, path: str) -> bool:
    """Whether the filter returns all of ``path`` (and everything under it)."""
    if not flt.fetch:
        return False
    if flt.includes and not Globs(flt.includes).matches(path):
        return False
    return not any(touches(pattern, path) for pattern in flt.excludes)


def touches(pattern: str, path: str) -> bool:
    """Whether an exclude pattern removes ``path``, an object above it or anything under it."""
    globs = Globs([pattern])
    return bool(globs.step(globs.start, path + "."))


def widen(client: SourceFilter, paths: Sequence[str]) -> SourceFilter | None:
    """A filter that returns what the client asked for plus ``paths``; None when the client's
    own filter already returns every path."""
    if all(covers(client, path) for path in paths):
        return None
    if not client.fetch:
        return SourceFilter(includes=tuple(paths))
    includes = client.includes
    if includes:
        includes += tuple(path for path in paths if path not in includes)
    excludes = tuple(pattern for pattern in client.excludes
                     if not any(touches(pattern, path) for path in paths))
    return SourceFilter(includes=includes, excludes=excludes)


def filter_source(source: JSONObject, flt: SourceFilter) -> JSONObject:
    """``source`` as OpenSearch returns it under ``flt`` (with ``fetch=True``)."""
    return source_filterer(flt)(source)


def source_filterer(flt: SourceFilter) -> Callable[[JSONObject], JSONObject]:
    """``filter_source`` for many hits: the automata (and their step caches) are built once."""
    if not flt.includes and not flt.excludes:
        return lambda source: source
    everything = Globs(["*"])
    include = Globs(flt.includes) if flt.includes else everything
    exclude = Globs(flt.excludes)

    def apply(source: JSONObject) -> JSONObject:
        return _filter_map(source, include, include.start, exclude, exclude.start, everything)

    return apply


def _filter_map(node: dict[str, Any], include: Globs, include_state: _State,
                exclude: Globs, exclude_state: _State, everything: Globs) -> JSONObject:
    out: JSONObject = {}
    for key, value in node.items():
        key_include = include.step(include_state, key)
        if not key_include:
            continue
        key_exclude = exclude.step(exclude_state, key)
        if exclude.accepts(key_exclude):
            continue
        sub_include, sub_state = include, key_include
        included = include.accepts(key_include)
        if included:
            if not exclude.step(key_exclude, "."):
                out[key] = value
                continue
            sub_include, sub_state = everything, everything.start
        if isinstance(value, dict):
            sub_state = sub_include.step(sub_state, ".")
            if not sub_state:
                continue
            inner = _filter_map(value, sub_include, sub_state,
                                exclude, exclude.step(key_exclude, "."), everything)
            if included or inner:
                out[key] = inner
        elif isinstance(value, list):
            items = _filter_list(value, sub_include, sub_state, exclude, key_exclude, everything)
            if included or items:
                out[key] = items
        elif included:
            out[key] = value
    return out


def _filter_list(items: list[Any], include: Globs, include_state: _State,
                 exclude: Globs, exclude_state: _State, everything: Globs) -> list[Any]:
    out: list[Any] = []
    keep_values = include.accepts(include_state)
    for item in items:
        if isinstance(item, dict):
            inner = _filter_map(item, include, include.step(include_state, "."),
                                exclude, exclude.step(exclude_state, "."), everything)
            if inner:
                out.append(inner)
        elif isinstance(item, list):
            nested = _filter_list(item, include, include_state, exclude, exclude_state,
                                  everything)
            if nested:
                out.append(nested)
        elif keep_values:
            out.append(item)
    return out
