"""Times in an answer become seek links, and nothing else of the answer becomes markup."""

from pllava_demo.studio import tab as tabs
from pllava_demo.ui.chat_messages import history
from pllava_demo.chat.prompt import Turn
from pllava_demo.ui.time_links import link_times


def test_the_three_ways_of_saying_a_time_are_linked_inside_the_video():
    text = "At 0:12 it turns, 12 s later 3.5 seconds pass, and at 00:01:05 it ends."
    assert link_times(text, 70.0) == ("At [0:12](#t=12) it turns, [12 s](#t=12) later [3.5 seconds](#t=3.5) pass, "
                                      "and at [00:01:05](#t=65) it ends.")
    # past the end, a ratio, a version number, or no video at all (a still image): plain text
    assert link_times("at 9:00, 3:45 odds, v1.2:30", 70.0) == "at 9:00, 3:45 odds, v1.2:30"
    assert link_times("at 0:12", None) == link_times("at 0:12", 0.0) == "at 0:12"


def test_the_answer_s_own_markup_stays_text():
    shown = link_times("<img src=x onerror=alert(1)> [x](http://e.com) www.e.org a@e.com *b* at 0:01", 5.0)
    assert shown == ("\\<img src=x onerror=alert(1)\\> \\[x\\](http\\://e.com) www\\.e.org a\\@e.com \\*b\\* "
                     "at [0:01](#t=1)")


def test_the_chat_shows_answers_with_time_links(engine, tmp_path):
    from videos import write_video

    studio = tabs.Tab(engine)
    try:
        tabs.load_video(studio, write_video(tmp_path / "v.mp4", n_frames=36, width=96, height=64), 4)
        studio.session.turns.append(Turn("When?", "at 0:01"))
        assert history(studio)[-1] == {"role": "assistant", "content": "at [0:01](#t=1)"}
    finally:
        studio.close()
