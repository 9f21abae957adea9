"""predict's results have schema.py's shape, and the server documents the same face fields."""

from typing import get_type_hints

import numpy as np

from ferkit import schema
from ferkit.jobs import predict_file
from ferkit.predict import record


def _keys(td, optional: tuple = ()) -> list[str]:
    """The fields of a TypedDict in order: the required ones, then the optional ones named."""
    return [k for k in get_type_hints(td) if k not in td.__optional_keys__] + list(optional)


class _FakePredictor:
    """Two faces in every picture, no model needed: the shapes are what is tested."""

    labels = ("happy", "sad")

    def predict(self, rgb, crops=False):
        return [record((0, 0, 10, 10), np.array([0.75, 0.25]), self.labels),
                record((20, 0, 10, 10), np.array([0.25, 0.75]), self.labels)]


def test_record_is_a_face():
    r = record(np.array([1, 2, 3, 4]), np.array([0.25, 0.75], np.float32), ("happy", "sad"))
    assert list(r) == _keys(schema.Face)
    assert r == {"box": [1, 2, 3, 4], "label": "sad", "score": 0.75, "probs": {"happy": 0.25, "sad": 0.75}}


def test_image_result(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "a.png")
    res = predict_file(_FakePredictor(), tmp_path / "a.png")
    assert list(res) == _keys(schema.ImageResult) and res["type"] == "image" and (res["width"], res["height"]) == (40, 30)
    assert all(list(f) == _keys(schema.Face) for f in res["faces"])
    res = predict_file(_FakePredictor(), tmp_path / "a.png", annotate_to=tmp_path / "copy.jpg")
    assert list(res) == _keys(schema.ImageResult, ("annotated",)) and res["annotated"] == str(tmp_path / "copy.jpg")


def test_video_result(tmp_path):
    import cv2

    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(3):
        w.write(np.zeros((48, 64, 3), np.uint8))
    w.release()
    res = predict_file(_FakePredictor(), video)
    assert list(res) == _keys(schema.VideoResult) and res["type"] == "video"
    assert all(list(fr) == _keys(schema.Frame) for fr in res["frames"]) and len(res["frames"]) == 3
    assert all(sorted(f) == sorted(_keys(schema.VideoFace)) for fr in res["frames"] for f in fr["faces"])
    assert [list(t) for t in res["faces"]] == [_keys(schema.Track)] * 2
    res = predict_file(_FakePredictor(), video, annotate_to=tmp_path / "copy.mp4")
    assert list(res) == _keys(schema.VideoResult, ("annotated",)) and res["annotated"] == str(tmp_path / "copy.mp4")


def test_server_models_have_the_schema_fields():
    """The server's documented face is schema.Face: the same fields, of the same types."""
    from ferkit.serve import FaceOut, PredictOut

    assert {k: f.annotation for k, f in FaceOut.model_fields.items()} == get_type_hints(schema.Face)
    image = get_type_hints(schema.ImageResult)
    assert PredictOut.model_fields["faces"].annotation == list[FaceOut]
    assert all(PredictOut.model_fields[k].annotation == image[k] for k in ("width", "height"))
