"""A real browser (system Chromium through Playwright) on the real app, at the sizes and in the modes a
first-time visitor brings: a phone (390x844: video, chat and question first, settings folded, the
answer in view after Send), a 1440x900 desktop (the whole gallery, the sliders and the panel text on
one screen), the keyboard and a screen reader (a skip link, labels, names, alt text), dark mode (text
contrast, a heat map with no white sheet), and a range chosen by two frames of the gallery."""

import pytest
from browser import answered, chromium, load, open_tab
from test_browser import page_server, page_url, pytestmark  # noqa: F401  (fixtures and marks shared)
from test_browser_time import tab  # noqa: F401  (live: conftest)
from videos import write_video


@pytest.fixture()
def browser():
    with chromium() as b:
        yield b


def rect(tab, selector) -> dict:
    return tab.locator(selector).first.evaluate("e => e.getBoundingClientRect().toJSON()")




# -- a phone -----------------------------------------------------------------------------------------
def test_a_phone_gets_video_chat_and_question_first_and_the_answer_in_view(browser, page_url, tmp_path):
    from playwright import sync_api

    tab = open_tab(browser, page_url, 390, 844)
    # the settings are folded: their header is there, their sliders are not on the way to the chat
    sync_api.expect(tab.locator("#settings")).to_be_visible()
    sync_api.expect(tab.locator("#frames-slider")).to_be_hidden()
    video, chat, box = rect(tab, "#video-input"), rect(tab, "#chat"), rect(tab, "#question")
    assert video["top"] < chat["top"] < box["top"], (video, chat, box)
    assert box["bottom"] <= 844 and tab.evaluate("() => window.scrollY") == 0  # all on the first screen
    tab.screenshot(path=str(tmp_path / "phone.png"))

    load(tab, write_video(tmp_path / "p.mp4", n_frames=24, width=160, height=120))
    # a person who went to look at the settings further down, then typed the question and pressed Enter
    tab.get_by_text("Generation", exact=True).click()
    # scrolled down until the chat is out of sight (the page may still grow while the video's view loads)
    tab.wait_for_function("() => { window.scrollTo(0, document.body.scrollHeight); "
                          "return document.querySelector('#chat').getBoundingClientRect().bottom < 0; }")
    sync_api.expect(tab.locator("#chat")).not_to_be_in_viewport()
    tab.locator("#question textarea").evaluate("e => e.focus({preventScroll: true})")
    tab.keyboard.type("What is in the video?")
    tab.keyboard.press("Enter")
    answered(tab, 1)
    sync_api.expect(tab.locator("#chat [data-testid=bot]").last).to_be_in_viewport()


# -- a desktop: the effect of a slider in view -------------------------------------------------------
def test_at_1440x900_the_whole_gallery_sliders_and_panel_are_on_the_first_screen(browser, page_url, tmp_path):
    from playwright import sync_api

    tab = open_tab(browser, page_url, 1440, 900)
    sync_api.expect(tab.locator("#frames-slider")).to_be_visible()  # the settings are open on a desktop
    load(tab, write_video(tmp_path / "d.mp4", n_frames=96, width=192, height=144, pattern="colour"))
    frames = tab.locator("#frames-slider input[type=number]")
    for n in (32, 4, 16):
        frames.fill(str(n))
        frames.press("Enter")
        sync_api.expect(tab.locator("#frames img")).to_have_count(n, timeout=60_000)
        sync_api.expect(tab.locator("#view-info")).to_contain_text(f"{n} frames", timeout=60_000)
        tab.evaluate("() => window.scrollTo(0, 0)")
        tab.wait_for_function("() => [...document.querySelectorAll('#frames img')].every(i => i.complete && i.naturalWidth)")
        shown = ["#frames-slider input[type=range]", "#alpha input[type=range]", "#pool-t input[type=range]",
                 "#pool-h input[type=range]", "#pool-w input[type=range]", "#view-info"]
        for selector in shown:
            assert rect(tab, selector)["bottom"] <= 900, (n, selector, rect(tab, selector))
        bottoms = tab.locator("#frames img").evaluate_all("imgs => imgs.map(i => i.getBoundingClientRect().bottom)")
        assert len(bottoms) == n and max(bottoms) <= 900, (n, bottoms)
        # the thumbnails keep one size whatever the count (8 a row): fewer frames are not bigger tiles
        widths = tab.locator("#frames img").evaluate_all("imgs => imgs.map(i => i.closest('button').offsetWidth)")
        assert max(widths) <= rect(tab, "#frames")["width"] / 8, (n, widths)
        # every timestamp is readable whole under its thumbnail (no "0.3…")
        cut = tab.locator("#frames .caption-label").evaluate_all(
            "cs => cs.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.innerText)")
        assert cut == [], (n, cut)
    tab.screenshot(path=str(tmp_path / "desktop.png"))


# -- the keyboard and a screen reader ----------------------------------------------------------------
def test_the_keyboard_reaches_the_question_in_two_keys_and_everything_has_a_name(browser, page_url, tmp_path):
    from playwright import sync_api

    tab = open_tab(browser, page_url, 1440, 900)
    load(tab, write_video(tmp_path / "k.mp4", n_frames=24, width=160, height=120))
    # From the page's start a keyboard user passes the video tabs and the player's seven controls
    # (play, volume, full screen, trim, clear, upload, camera) before the question box. The bound: 2
    # keys, the skip link (WCAG 2.4.1, "bypass blocks") as the very first Tab stop, and Enter on it.
    tab.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    tab.keyboard.press("Tab")
    focused = tab.evaluate("() => document.activeElement.innerText")
    assert focused == "Skip to the question"
    sync_api.expect(tab.locator("a.skip-link")).to_be_in_viewport()  # seen when focused
    tab.keyboard.press("Enter")
    sync_api.expect(tab.locator("#question textarea")).to_be_focused()
    tab.keyboard.type("Typed after two keys")
    sync_api.expect(tab.locator("#question textarea")).to_have_value("Typed after two keys")

    # a real label for the question box, names for the example buttons, alt text for the heat map
    sync_api.expect(tab.get_by_label("Your question")).to_have_attribute("placeholder", "Ask about the video…")
    for name in ("Bouncing ball", "Colour change", "Moving car"):
        sync_api.expect(tab.get_by_role("button", name=name, exact=True)).to_have_count(1)
    alt = tab.locator("#heatmap img").get_attribute("alt") or ""
    assert alt.startswith("Heat map of the visual tokens' feature norms") and "colour scale" in alt, alt
    sync_api.expect(tab.get_by_role("img", name=alt, exact=True)).to_have_count(1)


# -- dark mode ---------------------------------------------------------------------------------------
CONTRAST_JS = """(el) => {
    // any CSS colour -> [r, g, b, a] through a canvas (the computed style may be hex, rgb() or oklch())
    const ctx = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
    const rgba = (c) => { ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = '#000'; ctx.fillStyle = c;
                          ctx.fillRect(0, 0, 1, 1); return [...ctx.getImageData(0, 0, 1, 1).data]; };
    const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                                      .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    let bg = null;
    for (let e = el; e && !bg; e = e.parentElement) {
        const c = getComputedStyle(e).backgroundColor;
        if (c && rgba(c)[3] > 128) bg = rgba(c);
    }
    bg = bg || [255, 255, 255, 255];
    const fg = rgba(getComputedStyle(el).color);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return {fg, bg, ratio: (a + 0.05) / (b + 0.05)};
}"""

HEATMAP_PIXELS_JS = """(img) => {
    const c = document.createElement('canvas');
    [c.width, c.height] = [img.naturalWidth, img.naturalHeight];
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let white = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200 && d[i] > 240 && d[i + 1] > 240 && d[i + 2] > 240) white++;
    return {corner: d[3], white: white / (d.length / 4)};
}"""


def test_dark_mode_text_and_heat_map_are_readable(browser, page_url, tmp_path):
    from playwright import sync_api

    tab = open_tab(browser, page_url + "/?__theme=dark", 1440, 900, color_scheme="dark")
    load(tab, write_video(tmp_path / "n.mp4", n_frames=24, width=160, height=120, pattern="colour"))
    sync_api.expect(tab.locator("#view-info")).to_contain_text("visual tokens")
    assert tab.evaluate("() => document.body.classList.contains('dark')")
    page_bg = tab.locator("#view-info p").evaluate(CONTRAST_JS)["bg"]
    assert sum(page_bg[:3]) < 3 * 80, page_bg  # really dark
    key_text = [tab.locator("h1"), tab.locator("#model-status p"), tab.locator("#view-info p"),
                tab.locator("#question label span"), tab.locator("#frames .caption-label"),
                tab.locator(".slider-note p", has_text="Token norms per pooled time step")]
    for text in key_text:
        c = text.first.evaluate(CONTRAST_JS)
        assert c["ratio"] >= 4.5, (text, c)  # WCAG AA for body text
    # the heat map sits on the dark page (a transparent canvas), not on a white sheet; its labels
    # carry their own light chips (the handler test checks the ink on them)
    img = tab.locator("#heatmap img")
    tab.wait_for_function("() => document.querySelector('#heatmap img')?.complete")
    px = img.evaluate(HEATMAP_PIXELS_JS)
    assert px["corner"] == 0 and px["white"] < 0.1, px
    tab.screenshot(path=str(tmp_path / "dark.png"), full_page=True)  # to look at: pytest's tmp folder


# -- a range chosen by two frames ---------------------------------------------------------------------
def captions(tab) -> list[float]:
    return [float(c.split()[0]) for c in tab.locator("#frames .caption-label").all_inner_texts()]


def test_two_frames_of_the_gallery_set_the_range(live, tab, tmp_path):
    from playwright import sync_api

    load(tab, write_video(tmp_path / "two.mp4", n_frames=96, width=192, height=144, pattern="colour"))
    (studio,) = live[0].registry.open_tabs()
    notice = tab.locator("#notice")
    tab.locator("#range-from-frame").click()  # no frame clicked yet: say what to do
    sync_api.expect(notice).to_contain_text("Click a frame in the gallery first")

    times = list(studio.video.clip.timestamps)
    tab.wait_for_function("() => document.querySelector('#video-input video')?.readyState >= 1")
    tab.locator("#frames img").nth(3).click()  # the click still seeks the player
    tab.wait_for_function(f"() => Math.abs(document.querySelector('#video-input video').currentTime - {times[3]}) < 0.1")
    tab.locator("#range-from-frame").click()
    start = round(times[3], 2)
    sync_api.expect(tab.locator("#range-start :is(input, textarea)")).to_have_value(f"{start:g}", timeout=60_000)
    sync_api.expect(tab.locator("#view-info")).to_contain_text(f"sampled from {start:g} s", timeout=60_000)
    assert studio.video.clip.time_range == (start, None) and not notice.is_visible()
    sync_api.expect(tab.locator("#frames img")).to_have_count(16)

    later = list(studio.video.clip.timestamps)  # the gallery was sampled anew, inside the range
    assert later[0] >= start
    tab.locator("#frames img").nth(9).click()
    tab.locator("#range-to-frame").click()
    end = round(later[9], 2)
    sync_api.expect(tab.locator("#range-end :is(input, textarea)")).to_have_value(f"{end:g}", timeout=60_000)
    sync_api.expect(tab.locator("#view-info")).to_contain_text(f"sampled from {start:g} s to {end:g} s", timeout=60_000)
    assert studio.video.clip.time_range == (start, end)
    sync_api.expect(tab.locator("#frames img")).to_have_count(16)
    assert all(start - 0.05 <= t <= end + 0.05 for t in captions(tab)), captions(tab)

    tab.locator("#range-whole").click()
    sync_api.expect(tab.locator("#range-start :is(input, textarea)")).to_have_value("", timeout=60_000)
    sync_api.expect(tab.locator("#range-end :is(input, textarea)")).to_have_value("")
    sync_api.expect(tab.locator("#view-info")).not_to_contain_text("sampled from", timeout=60_000)
    assert studio.video.clip.time_range is None
