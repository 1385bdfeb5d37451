"""A loopback MPEG-TS/H.264 sender for the stream tests: ``python udp_sender.py PORT [--seconds S]``.

Encodes synthetic frames in real time and sends them to ``udp://127.0.0.1:PORT`` (never anywhere else).
Run as a subprocess so a test can kill it mid-stream, like a scanner's network feed going away.
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import av
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="174x98")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    out = av.open(f"udp://127.0.0.1:{args.port}?pkt_size=1316", mode="w", format="mpegts")
    stream = out.add_stream("libx264", rate=args.fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # A keyframe every 5 frames, so a receiver that (re)joins mid-stream decodes within ~0.2 s.
    stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "5"}
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < args.seconds:
        img = rng.integers(0, 60, (height, width, 3), np.uint8)
        x = 10 + (i * 3) % max(1, width - 40)
        img[height // 3 : height // 3 + 20, x : x + 30] = 200
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, args.fps)
        for packet in stream.encode(frame):
            out.mux(packet)
        i += 1
        time.sleep(max(0.0, t0 + i / args.fps - time.perf_counter()))
    for packet in stream.encode():
        out.mux(packet)
    out.close()


if __name__ == "__main__":
    main()
