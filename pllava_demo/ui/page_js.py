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
    // number clamped to the slider's range (the server clamps it too: event_context.quiet)
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
    // A file over the server's size limit is refused here, before gradio's own check (a pop-up and a red
    // "Error" on the box): one sentence in the message line, the box untouched and ready for another file.
    // The sentence is the server's own (frames/checks.py), rounded the same way.
    const localNotice = (text) => {
        document.querySelector('#notice-local')?.remove();
        const row = document.querySelector('#notice-row');
        if (!text || !row) return;
        const line = document.createElement('p');
        line.id = 'notice-local';
        line.textContent = text;
        row.prepend(line);
        line.scrollIntoView({block: 'nearest'});
        mirrorNotice();
    };
    const megabytes = (n) => { const mb = n / 2 ** 20; const step = mb < 1 ? 1000 : 10;
                               return String(Math.ceil(mb * step) / step); };
    const oversize = (files) => {
        const most = window.gradio_config?.max_file_size;
        const big = most ? Array.from(files || []).find((f) => f.size > most) : null;
        return big ? `The file is ${megabytes(big.size)} MB; the limit is ${megabytes(most)} MB.` : null;
    };
    const uploadBox = (el) => el.closest && el.closest('#video-input, #file-input');
    const refuseOversize = (e, files) => {
        const sentence = oversize(files);
        localNotice(sentence);  // a new file clears the last refusal either way
        if (!sentence) return;
        e.preventDefault();
        e.stopImmediatePropagation();
        if (e.target.matches && e.target.matches('input[type=file]')) e.target.value = '';
    };
    // A file chosen with the keyboard (Enter or Space on the upload box): the box is replaced by the player,
    // which would leave the focus on the page's body; it goes to the question box once the video is in
    let keyboardUpload = false, focusAfterUpload = false;
    document.addEventListener('keydown', (e) => {
        if ((e.key === 'Enter' || e.key === ' ') && uploadBox(e.target)) keyboardUpload = true;
    }, true);
    document.addEventListener('pointerdown', () => { keyboardUpload = false; }, true);
    document.addEventListener('change', (e) => {
        if (!(e.target.matches && e.target.matches('input[type=file]') && uploadBox(e.target))) return;
        refuseOversize(e, e.target.files);
        focusAfterUpload = keyboardUpload && !e.defaultPrevented;
        keyboardUpload = false;
    }, true);
    document.addEventListener('drop', (e) => {
        if (uploadBox(e.target) && e.dataTransfer) refuseOversize(e, e.dataTransfer.files);
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
        if (focusAfterUpload) {  // the upload's event wrote the page's state: the video is in
            focusAfterUpload = false;
            const where = document.activeElement;
            if (!where || where === document.body) questionBox()?.focus();
        }
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
        const fromServer = document.querySelector('#notice')?.innerText.trim() || '';
        if (fromServer) document.querySelector('#notice-local')?.remove();  // the newer message wins
        const text = fromServer || document.querySelector('#notice-local')?.innerText.trim() || '';
        if (live.textContent === text) return;
        live.textContent = text;
        // a new message is brought on screen if it is not (the least scroll that shows it)
        if (text) document.querySelector('#notice, #notice-local')?.scrollIntoView({block: 'nearest'});
    };
    // No camera on this device: the camera source is hidden (a "Click to Access Webcam" that never starts)
    navigator.mediaDevices?.enumerateDevices?.().then((devices) => {
        if (!devices.some((d) => d.kind === 'videoinput')) document.body.classList.add('no-camera');
    }).catch(() => document.body.classList.add('no-camera'));
    if (!navigator.mediaDevices?.enumerateDevices) document.body.classList.add('no-camera');
    // A person's text takes the direction of its own first letters (Hebrew, Arabic: right to left)
    const textDirection = () => {
        // (on the message's content: gradio writes dir="ltr" on the message itself)
        document.querySelectorAll('#chat [data-testid=user] .message-content:not([dir]), #question textarea:not([dir])')
            .forEach((el) => el.setAttribute('dir', 'auto'));
    };
    const watchChat = () => {
        const chat = document.querySelector('#chat');
        if (!chat) { setTimeout(watchChat, 300); return; }
        textDirection();
        new MutationObserver(textDirection).observe(chat, {subtree: true, childList: true});
    };
    watchChat();
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
