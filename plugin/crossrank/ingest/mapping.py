"""The index mapping an embed policy needs: create it, or check an existing one.

The vector field is a ``knn_vector`` of the embedder's dimension with an HNSW graph of the
pure-Java ``lucene`` engine, which every OpenSearch with the k-NN plugin has (the native faiss
and nmslib engines are missing from some builds, the Maven Central one among them). Without
such a mapping, the first document with a vector would map the field dynamically as ``float``
and every k-NN query on it would fail.
"""

from __future__ import annotations

from crossrank.types import JSON, JSONObject

__all__ = ["DEFAULT_SPACE", "SPACES", "check_mappings", "index_body", "put_mapping_body",
           "vector_mapping"]

DEFAULT_SPACE = "cosinesimil"
SPACES = ("cosinesimil", "l2", "innerproduct")


def vector_mapping(dimension: int, space_type: str = DEFAULT_SPACE) -> JSONObject:
    if space_type not in SPACES:
        raise ValueError(f"space_type must be one of {', '.join(SPACES)}")
    return {"type": "knn_vector", "dimension": dimension,
            "method": {"name": "hnsw", "engine": "lucene", "space_type": space_type}}


def _properties(path: str, leaf: JSONObject) -> JSONObject:
    """``{"properties": ...}`` that maps the dotted ``path`` to ``leaf``."""
    head, *rest = path.split(".")
    return {"properties": {head: _properties(".".join(rest), leaf) if rest else leaf}}


def index_body(vector_field: str, dimension: int, space_type: str = DEFAULT_SPACE) -> JSONObject:
    """The body of ``PUT /{index}`` for a new index: k-NN on, the vector field mapped; every
    other field is left to the index's templates and dynamic mapping."""
    return {"settings": {"index": {"knn": True}},
            "mappings": _properties(vector_field, vector_mapping(dimension, space_type))}


def put_mapping_body(vector_field: str, dimension: int,
                     space_type: str = DEFAULT_SPACE) -> JSONObject:
    """The body of ``PUT /{index}/_mapping`` adding the vector field to an existing index."""
    return _properties(vector_field, vector_mapping(dimension, space_type))


def check_mappings(response: JSON, vector_field: str, dimension: int | None) -> list[str]:
    """What is wrong for the vector field in a ``GET /{index}`` answer (one entry per concrete
    index behind the name: settings and mappings); an empty list when every index is fine."""
    if not isinstance(response, dict) or not response:
        return ["no index found"]
    problems = []
    for index, entry in sorted(response.items()):
        entry = entry if isinstance(entry, dict) else {}
        problem = _check_field(_field(entry.get("mappings"), vector_field), vector_field,
                               dimension)
        if problem is None and not _knn_enabled(entry.get("settings")):
            problem = ("index.knn is not true: k-NN queries cannot use the field; the index "
                       "must be created with index.knn: true (a static setting), then "
                       "reindexed")
        if problem is not None:
            problems.append(f"index [{index}]: {problem}")
    return problems


def _knn_enabled(settings: JSON) -> bool:
    index = settings.get("index") if isinstance(settings, dict) else None
    value = index.get("knn") if isinstance(index, dict) else None
    if value is None and isinstance(settings, dict):
        value = settings.get("index.knn")  # flat_settings=true
    return value is True or value == "true"


def _field(mappings: JSON, path: str) -> JSON:
    node = mappings
    for part in path.split("."):
        properties = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(properties, dict) or part not in properties:
            return None
        node = properties[part]
    return node


def _check_field(field: JSON, path: str, dimension: int | None) -> str | None:
    if not isinstance(field, dict):
        return (f"field [{path}] is not mapped; it must be a knn_vector (a vector written "
                f"without that mapping is mapped as float and k-NN cannot search it)")
    kind = field.get("type", "object")
    if kind != "knn_vector":
        return f"field [{path}] is mapped as [{kind}], expected [knn_vector]"
    data_type = field.get("data_type", "float")
    if data_type != "float":
        return f"field [{path}] has data_type [{data_type}], expected [float]"
    found = field.get("dimension")
    if dimension is not None and found != dimension:
        return (f"field [{path}] has dimension [{found}], the embedder gives vectors of "
                f"dimension [{dimension}]")
    return None
