"""The score cache: bounded, least recently used out first, and a changed text always misses."""

from __future__ import annotations

from crossrank.search.score_cache import ScoreCache


def test_hit_after_put_and_counts() -> None:
    cache = ScoreCache(10)
    key = ScoreCache.key("m", 256, "q", "idx", "1", "some text")
    assert cache.get_many([key]) == [None]
    cache.put_many([key], [0.5])
    assert cache.get_many([key]) == [0.5]
    assert (cache.hits, cache.misses) == (1, 1)


def test_changed_document_text_misses() -> None:
    cache = ScoreCache(10)
    before = ScoreCache.key("m", None, "q", "idx", "1", "old abstract")
    after = ScoreCache.key("m", None, "q", "idx", "1", "new abstract")
    cache.put_many([before], [1.0])
    assert cache.get_many([after]) == [None]


def test_model_query_and_length_are_part_of_the_key() -> None:
    cache = ScoreCache(10)
    cache.put_many([ScoreCache.key("m", 128, "q", "i", "1", "t")], [1.0])
    others = [ScoreCache.key("other", 128, "q", "i", "1", "t"),
              ScoreCache.key("m", 256, "q", "i", "1", "t"),
              ScoreCache.key("m", 128, "q2", "i", "1", "t"),
              ScoreCache.key("m", 128, "q", "j", "1", "t")]
    assert cache.get_many(others) == [None] * 4


def test_bounded_and_least_recently_used_goes_first() -> None:
    cache = ScoreCache(3)
    keys = [ScoreCache.key("m", None, "q", "i", str(n), "t") for n in range(4)]
    cache.put_many(keys[:3], [0.0, 1.0, 2.0])
    cache.get_many([keys[0]])  # 0 is now the most recently used
    cache.put_many([keys[3]], [3.0])
    assert len(cache) == 3
    assert cache.get_many(keys) == [0.0, None, 2.0, 3.0]


def test_zero_size_disables() -> None:
    cache = ScoreCache(0)
    key = ScoreCache.key("m", None, "q", "i", "1", "t")
    cache.put_many([key], [1.0])
    assert cache.get_many([key]) == [None] and len(cache) == 0
