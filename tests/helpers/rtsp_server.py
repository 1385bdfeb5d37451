"""A loopback RTSP server for the stream tests: ``python3 rtsp_server.py PORT`` serves ``rtsp://127.0.0.1:PORT/live``.

An H.264 test pattern (a moving ball, 174x98 at 30 fps, a keyframe every 10 frames) through GStreamer's RTSP
server, as an IP encoder or a scanner's network output would offer it. It runs under the system Python with
Debian's GStreamer bindings (``python3-gi``, ``gir1.2-gst-rtsp-server-1.0``, ``gstreamer1.0-plugins-good`` and
``-ugly``; ``.ci/setup-rtsp.sh``), not usvid's virtual environment, and only ever binds 127.0.0.1. Prints
``ready`` once it listens.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=174,height=98,framerate=30/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 )"
)


def main() -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{sys.argv[1]}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
