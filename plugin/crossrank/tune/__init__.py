"""`crossrank tune`: which scoring settings are best for one index, cross-validated on the
user's own judgments, with "reranking off" a valid answer.

``collect`` (the only module that talks to the proxy) fetches each judged query's widest window
once, with every hit's first-stage rank and score, reranker score and hybrid signals
(``ext.crossrank.explain``); ``candidates`` re-ranks those windows for every candidate setting
with the pipeline's own fusion functions (pure); ``crossval`` chooses settings on k-1 folds
and scores them on the held-out one; ``report`` writes markdown, JSON and a plot; ``command``
is the CLI.
"""
