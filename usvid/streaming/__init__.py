"""Real-time overlay on a live or recorded ultrasound feed: ``usvid stream``.

:func:`run_stream` is what the CLI calls; :class:`StreamPipeline` runs a stream with any predictor (tests
use a fake one); sources, sinks and statistics live in their own modules; temporal smoothing is
:mod:`usvid.inference.smoothing`, shared with ``usvid predict``.
"""

from usvid.streaming.config import StreamConfig
from usvid.streaming.pipeline import LiveStatus, StreamPipeline, StreamSummary, run_stream

__all__ = ["LiveStatus", "StreamConfig", "StreamPipeline", "StreamSummary", "run_stream"]
