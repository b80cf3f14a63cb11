"""The page's streaming and its text, without a browser: an answer reaches the page a few times a
second whatever the token rate, whole at the end; a person's question is shown exactly as typed."""

import itertools

from pllava_demo.ui.chat_view import as_typed, for_page
from pllava_demo.ui.page_state import state_html
from pllava_demo.ui.streaming import coalesce


def ticking(step: float):
    """A clock that moves `step` seconds each time it is read: a model writing 1/step tokens a second."""
    counter = itertools.count()
    return lambda: next(counter) * step


def test_a_fast_stream_reaches_the_page_a_few_times_a_second_and_whole():
    pieces = [f"answer {k}" for k in range(4000)]  # 4,000 tokens at 1,000 a second: 4 s
    shown = list(coalesce(iter(pieces), interval_s=0.25, clock=ticking(0.001)))
    assert shown[0] == pieces[0] and shown[-1] == pieces[-1]  # the first at once, the last always
    assert len(shown) <= 4 / 0.25 + 2  # 4 s at four a second (+ first and last), not 4,000
    assert shown == sorted(shown, key=pieces.index)  # in order, never an older text after a newer


def test_a_long_answer_reaches_the_page_less_often_as_it_grows():
    """A render costs the browser time in proportion to the text: the pauses grow with it, so the
    page is never busy rendering all the time (Stop gets its turn)."""
    words = ["word"] * 4000
    pieces = [" ".join(words[:k]) for k in range(1, 4001)]  # the answer so far, to 20,000 characters
    shown = list(coalesce(iter(pieces), interval_s=0.25, clock=ticking(0.001), per_char_s=50e-6))
    assert shown[-1] == pieces[-1]
    steps = [pieces.index(b) - pieces.index(a) for a, b in zip(shown, shown[1:-1])]  # ms between pieces
    assert steps[0] <= 260 and steps[-1] >= 900, steps  # 0.25 s at first, ~a second at 15,000+ characters
    plain = list(coalesce(iter(pieces), interval_s=0.25, clock=ticking(0.001), per_char_s=0.0))
    assert len(shown) <= len(plain) * 0.6  # 4 s of streaming: 9 renders, not 17


def test_a_slow_stream_shows_every_piece():
    pieces = [str(k) for k in range(20)]  # 2 tokens a second: each is news
    assert list(coalesce(iter(pieces), interval_s=0.25, clock=ticking(0.5))) == pieces


def test_closing_the_page_stream_closes_the_answer_stream():
    closed = []

    def answer():
        try:
            yield from (str(k) for k in range(100))
        finally:
            closed.append(True)  # the engine writes the partial turn here

    shown = coalesce(answer(), clock=ticking(1.0))
    assert next(shown) == "0"
    shown.close()
    assert closed == [True]


def test_a_question_is_shown_exactly_as_typed():
    typed = "<image> </s> a*b*c [x](http://e.com) <img src=x onerror=alert(1)> `code` # not a title\n    indented"
    shown = as_typed(typed)
    # every Markdown/HTML character is escaped with a backslash, nothing else changes
    assert shown.replace("\\", "").replace("\u00a0", " ") == typed.replace("\\", "")
    assert "\\<image\\>" in shown and "a\\*b\\*c" in shown and "\\[x\\]\\(http\\:\\/\\/e\\.com\\)" in shown
    messages = [{"role": "user", "content": "a*b*c"}, {"role": "assistant", "content": "*kept*"}]
    assert for_page(messages) == [{"role": "user", "content": "a\\*b\\*c"}, {"role": "assistant", "content": "*kept*"}]


def test_page_state_ids_grow():
    first, second = state_html(True, 1), state_html(False, 1)
    ids = [int(s.split('data-event="')[1].split('"')[0]) for s in (first, second)]
    assert ids[1] > ids[0] and 'data-answering="1"' in first and 'data-turns="1"' in second
