"""Video decoding: one reader interface over PyAV, decord, torchcodec, image folders and DICOM cines."""

from usvid.video.reader import FrameBatch, VideoInfo, VideoReader, open_video

__all__ = ["FrameBatch", "VideoInfo", "VideoReader", "open_video"]
