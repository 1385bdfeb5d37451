"""Synthetic MBUD-style breast-ultrasound scan videos (``usvid synth``).

MBUD, the paper's private video set, is 160 scan videos of 136 patients at 854x500 with one
benign/malignant label per video and lesion boxes on under 2% of the frames. :func:`generate_dataset`
makes data of the same shape, with exact per-frame truth, so the whole pipeline can be tested end to end.
"""

from usvid.synth.chrome import PHI_TEXT
from usvid.synth.config import LABELS, SynthConfig
from usvid.synth.dataset import GROUND_TRUTH_NAME, SynthSummary, generate_dataset, plan_dataset
from usvid.synth.render import VideoTruth, write_scan_video

__all__ = [
    "GROUND_TRUTH_NAME",
    "LABELS",
    "PHI_TEXT",
    "SynthConfig",
    "SynthSummary",
    "VideoTruth",
    "generate_dataset",
    "plan_dataset",
    "write_scan_video",
]
