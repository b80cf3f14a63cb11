"""The page's state holds only the tab's id, and the registry owns the tab: on a real gradio server (in
this process, the tiny random checkpoint), the page's own events (sent as the browser sends them, through
the queue) change the options twice in a row, and the next question, asked by a door that carries no
options (the named /chat of the same session), is answered with the latest ones."""

import json
import uuid

import httpx
from videos import write_video

from pllava_demo.studio import tab as tabs


def event(demo, name: str, api: bool = False):
    """The fn_index and BlockFunction of the page event (or named endpoint) `name`."""
    for index, fn in demo.fns.items():
        if (fn.api_name == name) if api else (getattr(fn.fn, "__name__", None) == name):
            return index, fn
    raise LookupError(name)


def send(url: str, session: str, index: int, data: list) -> list:
    """One event through the queue, as the page's script sends it; its last output values."""
    with httpx.Client(base_url=url, timeout=120) as http:
        joined = http.post("/gradio_api/queue/join", json={"data": data, "fn_index": index, "session_hash": session,
                                                            "event_data": None, "trigger_id": None})
        joined.raise_for_status()
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    assert msg.get("success"), msg
                    return msg["output"]["data"]
    raise AssertionError("the event never completed")


def values(fn, given: dict) -> list:
    """Every input of the event at its component's value, except those `given` (by component)."""
    return [given.get(c, getattr(c, "value", None)) for c in fn.inputs]


def test_two_option_changes_then_an_ask_use_the_latest_options(live, tmp_path):
    demo, url = live
    page_state = next(c for c in demo.blocks.values() if type(c).__name__ == "State" and c.delete_callback)
    session = uuid.uuid4().hex[:11]
    tab = demo.registry.tab(session)  # the tab this browser session's events will find (as an upload makes it)
    tabs.set_options(tab, pooling=(2, 3, 3), min_new_tokens=1)
    tabs.load_video(tab, write_video(tmp_path / "v.mp4", n_frames=24, width=96, height=64), 4)

    index, fn = event(demo, "on_pooling")
    max_new = next(c for c in fn.inputs if getattr(c, "label", None) == "Max new tokens")
    system = next(c for c in fn.inputs if getattr(c, "label", None) == "System prompt")
    base = {c: (4 if c.label == "Frames" else c.value) for c in fn.inputs if c is not page_state}
    send(url, session, index, values(fn, {**base, max_new: 5, system: "First system prompt."}))
    send(url, session, index, values(fn, {**base, max_new: 3, system: "Second system prompt."}))

    chat_index, chat_fn = event(demo, "chat", api=True)
    answer, _ = send(url, session, chat_index, values(chat_fn, {chat_fn.inputs[0]: "What is in the video?"}))
    assert demo.registry.get(session) is tab and len(demo.registry) == 1
    used = tabs.turn_settings(tab, 0)
    assert used["generation"]["max_new_tokens"] == 3 and used["system"] == "Second system prompt."
    assert tab.session.system == "Second system prompt." and tab.session.turns[0].answer == answer
    # what the session's state holds (each event writes it back): the tab's id, never the tab
    assert demo.state_holder[session].state_data[page_state._id] == session
