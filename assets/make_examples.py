"""Write the Studio's example videos (synthetic, so they are free to ship): run
`python assets/make_examples.py` to (re)make them next to this script. Each is a few seconds of
320x240 H.264 and well under 300 KB."""

from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
W, H, FPS, SECONDS = 320, 240, 12, 4


def _write(name: str, frame_fn) -> Path:
    path = HERE / name
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": "30", "preset": "veryslow"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for k in range(FPS * SECONDS):
            frame = av.VideoFrame.from_ndarray(frame_fn(k / FPS), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _canvas(top, bottom) -> np.ndarray:
    t = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None, None]
    img = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(img, (H, W, 3)).copy()


YY, XX = np.mgrid[0:H, 0:W]


def bouncing_ball(s: float) -> np.ndarray:
    img = _canvas((170, 210, 255), (240, 240, 230))
    img[200:] = (90, 160, 80)  # grass
    x = 30 + (W - 60) * abs(((s * 0.45) % 2) - 1)
    y = 190 - 150 * abs(np.sin(np.pi * s * 0.9))
    img[(XX - x) ** 2 + (YY - y) ** 2 < 18**2] = (220, 40, 40)
    return img.astype(np.uint8)


def moving_car(s: float) -> np.ndarray:
    img = _canvas((120, 170, 230), (200, 210, 220))
    img[170:] = (60, 60, 65)  # road
    img[200:204, ::40] = (240, 240, 240)
    x = int(-80 + (W + 160) * s / SECONDS)
    body = (XX >= x) & (XX < x + 90) & (YY >= 140) & (YY < 175)
    cabin = (XX >= x + 20) & (XX < x + 65) & (YY >= 118) & (YY < 142)
    img[body | cabin] = (30, 90, 200)
    for cx in (x + 20, x + 70):
        img[(XX - cx) ** 2 + (YY - 178) ** 2 < 11**2] = (20, 20, 20)
    return img.astype(np.uint8)


def colour_change(s: float) -> np.ndarray:
    phase = s / SECONDS * 2 * np.pi
    top = (128 + 110 * np.sin(phase), 128 + 110 * np.sin(phase + 2.1), 128 + 110 * np.sin(phase + 4.2))
    img = _canvas(top, (250, 250, 250))
    img[(abs(XX - W // 2) < 40) & (abs(YY - H // 2) < 40)] = (255 - np.array(top)).clip(0, 255)
    return img.astype(np.uint8)


if __name__ == "__main__":
    for name, fn in [("bouncing_ball.mp4", bouncing_ball), ("moving_car.mp4", moving_car),
                     ("colour_change.mp4", colour_change)]:
        p = _write(name, fn)
        print(f"{p.name}: {p.stat().st_size / 1024:.0f} KB")
