"""Text cut to a chat provider's byte limit never splits a character, and the cut shows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opsbus.notifier.channels.chat import fit_bytes, markdown_lines


@given(st.text(), st.integers(min_value=8, max_value=300))
def test_fit_bytes_stays_within_the_limit_and_decodes(text: str, limit: int) -> None:
    cut = fit_bytes(text, limit)
    assert len(cut.encode()) <= limit
    if len(text.encode()) <= limit:
        assert cut == text
    else:
        assert cut.endswith("\n…") and text.startswith(cut[: -len("\n…")])


def test_chinese_text_is_cut_on_a_character_boundary() -> None:
    text = "容器反复崩溃" * 10  # 3 bytes a character
    cut = fit_bytes(text, 20)
    assert cut == "容器反复崩\n…"  # 15 bytes of text + 4 of marker; a sixth character would need 21


def test_markdown_lines_keep_their_breaks() -> None:
    assert markdown_lines("a\nb\n\nc") == "a  \nb  \n  \nc"
