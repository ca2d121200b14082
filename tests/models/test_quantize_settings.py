"""The int8 settings follow the CPU's instruction set, read from /proc/cpuinfo flags."""

from __future__ import annotations

import platform

import pytest

from crossrank.models.quantize import cpu_isa

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"


@pytest.mark.parametrize("flags, isa", [
    (ZEN4, "avx512_vnni"),
    ("flags : sse2 avx2 avx512f avx512bw avx512dq\n", "avx512"),
    ("flags : sse2 avx avx2 fma\n", "avx2"),
    ("", "avx2"),
])
def test_isa_from_cpuinfo_flags(flags: str, isa: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert cpu_isa(flags) == isa


def test_arm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert cpu_isa(ZEN4) == "arm64"
