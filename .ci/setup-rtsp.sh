#!/usr/bin/env bash
# Installs GStreamer's RTSP server for the system Python (Debian packages) for the RTSP test of `usvid stream`.
# Optional: tests/streaming/test_rtsp.py skips cleanly without it. Idempotent: does nothing when already there.
set -euo pipefail
PROBE="import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); from gi.repository import Gst, GstRtspServer; \
Gst.init(None); assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')"
if /usr/bin/python3 -c "$PROBE" >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# apt keeps every downloaded .deb in its cache; they are not needed once installed, and CI disks are small.
trap '$SUDO apt-get clean || true' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends python3-gi gir1.2-gst-rtsp-server-1.0 \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly >/dev/null
/usr/bin/python3 -c "$PROBE"
