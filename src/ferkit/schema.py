"""The shape of predict's results, in one place: one face's record, one file's result (photo or
video) and a file that failed. predict.py and video.py build them, outputs.py prints and writes
them, and serve.py's response model has the same face fields (tests/test_schema.py checks it).

All values are plain Python numbers and strings, so every result is JSON-ready as it is.
"""

from __future__ import annotations

from typing import Literal, TypedDict


class Face(TypedDict):
    """One face (predict.record)."""

    box: list[int]  # x, y, width, height in the photo's pixels (upright, after EXIF rotation)
    label: str  # the most probable of the model's emotions
    score: float  # its probability
    probs: dict[str, float]  # the probability of each of the model's emotions, in the model's order


class VideoFace(Face):
    """A face in a sampled video frame, with the id that follows it across frames (video.FaceTracker)."""

    face_id: int


class _Copy(TypedDict, total=False):
    annotated: str  # where --annotate wrote the file's annotated copy (absent: none asked for, or none written)


class ImageResult(_Copy):
    """One photo (jobs.predict_file)."""

    file: str
    type: Literal["image"]
    width: int
    height: int
    faces: list[Face]


class Frame(TypedDict):
    """One sampled video frame."""

    frame: int  # its index in the video
    time: float | None  # seconds from the start, the container's own for the frame; None when the video gives no frame rate
    faces: list[VideoFace]


class Track(TypedDict):
    """One face across a video (video.summarize_tracks)."""

    face_id: int
    first_frame: int
    last_frame: int
    count: int  # sampled frames it was seen in
    labels: dict[str, int]  # how often each emotion was its label
    mean_probs: dict[str, float]
    label: str  # the emotion of the highest mean probability
    timeline: list[str]  # its label in each frame it was seen in


class VideoResult(_Copy):
    """One video (video.predict_video)."""

    file: str
    type: Literal["video"]
    width: int
    height: int
    fps: float | None  # the rate its frames' times are made with; None (every time null too): unknown
    frames_read: int
    every: int  # every Nth frame was sampled
    frames: list[Frame]
    faces: list[Track]
    complete: bool  # False: stopped (Ctrl-C, SIGTERM) before the video's end, or it ended before 90% of the frames
    # its header declares (damaged or cut short); frames holds those done


class FileError(TypedDict):
    """A file that could not be processed: `ferkit predict` keeps it in its JSON beside the results."""

    file: str
    error: str  # what went wrong and how to fix it
    reason: str  # ImageError.reason (not_found, not_image, corrupt, ...) or "error"


FileResult = ImageResult | VideoResult
