"""The search path: plan → (pipeline: retrieve, score) → merge, with query text and fusion.

Everything here except ``pipeline`` is pure: JSON in, JSON out, no I/O.
"""
