"""The page's own script, given to gradio as `launch(js=...)` (serving.py): time you can click, the
skip link, focus and keyboard fixes, the camera note, the queued question and the warning before a
chat is lost. It reads the page's state from #page-state (page_state.py) and never talks to the server.
"""

# Time you can click: the player seeks to a clicked frame's time (the gallery's select event hands it to
# window.pllavaSeek) or to a time link in an answer (`#t=<seconds>`, the only links the chat's answers have:
# time_links.py). One listener on the document, in the capture phase, so the link never navigates.
PAGE_JS = """() => {
    window.pllavaSeek = (t) => {
        const v = document.querySelector('#video-input video');
        if (v && Number.isFinite(t)) { v.pause(); v.currentTime = t; v.scrollIntoView({block: 'nearest'}); }
    };
    document.addEventListener('click', (e) => {
        const a = e.target.closest && e.target.closest('#chat a[href^="#t="]');
        if (!a) return;
        e.preventDefault();
        e.stopPropagation();
        window.pllavaSeek(parseFloat(a.getAttribute('href').slice(3)));
    }, true);
    // The skip link (the first Tab stop) puts the focus in the question box itself, not only the view there
    document.addEventListener('click', (e) => {
        if (!(e.target.closest && e.target.closest('a.skip-link'))) return;
        e.preventDefault();
        document.querySelector('#question textarea')?.focus();
    }, true);
    // After Send (or Enter), the answer is brought into view once it starts: on a phone the chat may
    // be above the screen by then (the keyboard, a scroll)
    const answerIntoView = () => {
        const chat = document.querySelector('#chat');
        if (!chat) return;
        const before = chat.querySelectorAll('[data-testid=bot]').length;
        const watch = new MutationObserver(() => {
            const bots = chat.querySelectorAll('[data-testid=bot]');
            if (bots.length <= before) return;
            watch.disconnect();
            bots[bots.length - 1].scrollIntoView({block: 'nearest'});
        });
        watch.observe(chat, {subtree: true, childList: true});
        setTimeout(() => watch.disconnect(), 120000);
    };
    document.addEventListener('click', (e) => {
        if (e.target.closest && e.target.closest('#send')) answerIntoView();
    }, true);
    document.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey && e.target.closest && e.target.closest('#question')) answerIntoView();
    }, true);
    // Enter in a slider's number box commits it as leaving the box does: gradio then shows the
    // number clamped to the slider's range (the server clamps it too: events.quiet)
    document.addEventListener('keydown', (e) => {
        const box = e.target;
        if (e.key === 'Enter' && box.matches && box.matches('input[type=number]')
            && box.closest('.block')?.querySelector('input[type=range]')) box.blur();
    }, true);
    // No camera: say so where the camera would be, instead of a blank box that never starts
    const cameraNote = (text) => {
        document.querySelector('#no-camera')?.remove();
        const block = document.querySelector('#video-input');
        if (!text || !block) return;
        const note = document.createElement('p');
        note.id = 'no-camera';
        note.setAttribute('role', 'alert');
        note.textContent = text;
        block.after(note);  // under the box: inside it would cover its own buttons
    };
    document.addEventListener('click', async (e) => {
        const source = e.target.closest && e.target.closest('#video-input [data-testid=source-select] button');
        if (!source) return;
        if (source.getAttribute('aria-label') !== 'Capture from camera') { cameraNote(null); return; }
        if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
            cameraNote('The camera works only on a secure (https) page: upload a video file instead.');
            return;
        }
        const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
        cameraNote(devices.some((d) => d.kind === 'videoinput') ? null
                   : 'No camera was found on this device: upload a video file instead.');
    }, true);
    // The page's state for machines and for the lines below: #page-state's data attributes (page_state.py)
    const pageState = () => document.querySelector('#page-state [data-event]')?.dataset || {};
    const answering = () => pageState().answering === '1';
    const questionBox = () => document.querySelector('#question textarea');
    // Stop (and Send) hide themselves: the focus goes back to the question box, not to the page's body
    document.addEventListener('click', (e) => {
        if (e.target.closest && e.target.closest('#stop, #send')) setTimeout(() => questionBox()?.focus(), 0);
    }, true);
    // Enter while an answer streams: the question waits in its box, marked as queued, and is sent
    // when the answer ends (Stop included); emptying the box cancels it
    const setQueued = (on) => {
        const question = document.querySelector('#question');
        if (!question) return;
        let note = document.querySelector('#queued-note');
        if (!on) { note?.remove(); question.removeAttribute('data-queued'); return; }
        question.setAttribute('data-queued', '1');
        if (note) return;
        note = document.createElement('p');
        note.id = 'queued-note';
        note.setAttribute('role', 'status');
        note.textContent = 'Queued: your question is sent when this answer ends (empty the box to cancel).';
        question.closest('.row')?.after(note);
    };
    document.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter' || e.shiftKey || !(e.target.closest && e.target.closest('#question'))) return;
        if (!answering()) return;
        e.preventDefault();
        e.stopPropagation();
        if (questionBox()?.value.trim()) setQueued(true);
    }, true);
    document.addEventListener('input', (e) => {
        if (e.target === questionBox() && !e.target.value.trim()) setQueued(false);
    }, true);
    const stateChanged = () => {
        if (answering() || !document.querySelector('#question[data-queued]')) return;
        setQueued(false);
        if (questionBox()?.value.trim()) document.querySelector('#send')?.click();
    };
    const watchState = () => {
        const el = document.querySelector('#page-state');
        if (!el) { setTimeout(watchState, 200); return; }
        new MutationObserver(stateChanged).observe(el, {subtree: true, childList: true, attributes: true});
    };
    watchState();
    // The message line is announced (a polite live region that mirrors #notice: gradio mounts and
    // unmounts the notice itself, and a region must exist before its text changes to be read out)
    const live = document.createElement('div');
    live.id = 'notice-live';
    live.className = 'sr-only';
    live.setAttribute('role', 'status');
    live.setAttribute('aria-live', 'polite');
    document.body.appendChild(live);
    const mirrorNotice = () => {
        const text = document.querySelector('#notice')?.innerText.trim() || '';
        if (live.textContent === text) return;
        live.textContent = text;
        // a new message is brought on screen if it is not (the least scroll that shows it)
        if (text) document.querySelector('#notice')?.scrollIntoView({block: 'nearest'});
    };
    // Names a screen reader can use: the player's button, and each slider's reset button by its slider
    const nameControls = (root) => {
        root.querySelectorAll('[aria-label="play-pause-replay-button"]').forEach(
            (b) => b.setAttribute('aria-label', 'Play or pause the video'));
        // a refused file is said once, in the message line: not also in the player's own pop-up
        document.querySelectorAll('.toast-body').forEach((t) => {
            if (/not playable/i.test(t.innerText)) (t.closest('.toast-wrap > *') || t).style.display = 'none';
        });
        root.querySelectorAll('button[aria-label="Reset to default value"]').forEach((b) => {
            const label = b.closest('.block')?.querySelector('label, [data-testid=block-info]')?.textContent.trim();
            if (label) b.setAttribute('aria-label', `Reset ${label} to its default`);
        });
    };
    const watchControls = () => {
        const roots = ['#notice-row', '#video-input', '#settings', '#generation', '#compare-box', '#chapters', '.toast-wrap']
            .map((sel) => document.querySelector(sel)).filter(Boolean);
        if (!document.querySelector('#video-input') || !document.querySelector('#notice-row')) {
            setTimeout(watchControls, 300);
            return;
        }
        roots.forEach((root) => {
            nameControls(root);
            new MutationObserver(() => { nameControls(root); mirrorNotice(); })
                .observe(root, {subtree: true, childList: true, characterData: true});
        });
        mirrorNotice();
    };
    watchControls();
    // Reload, Back or closing the tab would lose the video and the chat: the browser asks first
    window.pllavaWouldLose = () => {
        const s = pageState();
        return s.answering === '1' || Number(s.turns) > 0 || Boolean(document.querySelector('#frames img'));
    };
    window.addEventListener('beforeunload', (e) => {
        if (!window.pllavaWouldLose()) return;
        e.preventDefault();
        e.returnValue = '';
    });
}"""
