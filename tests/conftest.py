"""Shared fixtures: tiny random checkpoints written in the real on-disk layouts, and no network."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faulthandler  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# A last-resort watchdog that needs no GIL: pytest-timeout (pytest.ini, 600 s) runs in a Python thread and
# cannot fire while native code holds the GIL. faulthandler's C thread can: after HANG_S it writes every
# thread's stack to STACKS and ends the run (exit code 1); .ci/run prints that file.
HANG_S = int(os.environ.get("PLLAVA_TEST_HANG_S", 660))
STACKS = Path(os.environ.get("PLLAVA_TEST_STACKS", Path(tempfile.gettempdir()) / "pllava-test-stacks.txt"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Arms the watchdog around a test's setup (session fixtures included), call and teardown."""
    with open(STACKS, "w") as out:
        out.write(f"{item.nodeid} ran for more than {HANG_S} s; its threads:\n")
        out.flush()
        faulthandler.dump_traceback_later(HANG_S, exit=True, file=out)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
    STACKS.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _ordinary_scheduling():
    """Fails a test that leaves the process's main thread at a real-time priority (see
    videos.own_scheduling: that is how a run once stalled), and gives the next test an ordinary one."""
    yield
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        pytest.fail("the test left the main thread at a real-time scheduling priority")


@pytest.fixture(scope="session")
def tiny_official(tmp_path_factory):
    from pllava_demo.network.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny_official"), layout="official")


@pytest.fixture(scope="session")
def tiny_llava_hf(tmp_path_factory):
    from pllava_demo.network.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny_llava_hf"), layout="llava-hf")


@pytest.fixture(scope="session")
def tiny_chatml(tmp_path_factory):
    from pllava_demo.network.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny_chatml"), layout="official", chat_format="chatml")


@pytest.fixture(scope="session")
def engine(tiny_official):
    from pllava_demo.chat.engine import Engine

    return Engine.load(tiny_official, device="cpu", quantization="none")


@pytest.fixture(scope="session")
def legacy_tokenizer():
    """A tokenizer in the released legacy LLaMA layout (tests/legacy_tokenizer.py)."""
    from legacy_tokenizer import build_legacy_tokenizer

    return build_legacy_tokenizer()


@pytest.fixture(scope="session")
def tiny_legacy(tmp_path_factory):
    """A tiny official-layout checkpoint with the legacy LLaMA tokenizer (random answers)."""
    from legacy_tokenizer import make_legacy_tiny

    return make_legacy_tiny(tmp_path_factory.mktemp("tiny_legacy"))


@pytest.fixture(scope="session")
def shared_browser():
    """One headless Chromium for the whole session (tests/browser.py); each test opens its own page,
    which is a context of its own."""
    from browser import chromium

    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    """The test gate's folder (studio/test_gate.py) for a module's server: PLLAVA_TEST_GATE=<it>."""
    return tmp_path_factory.mktemp("gate")


@pytest.fixture(scope="module")
def live(engine):
    """The real page served in this process (one server per test module), so a test can reach into a
    tab through the page's registry: (demo, url)."""
    from ui_server import free_port

    from pllava_demo import ui
    from pllava_demo.studio.model_holder import ModelHolder

    demo = ui.build_demo(ModelHolder.ready(engine))
    port = free_port()
    ui.launch(demo, port=port, prevent_thread_lock=True)
    try:
        yield demo, f"http://127.0.0.1:{port}"
    finally:
        demo.close()


def pytest_sessionfinish(session, exitstatus):
    import sys

    if "browser" in sys.modules:  # only when a browser test ran
        sys.modules["browser"].close_chromium()
