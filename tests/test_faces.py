import io
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.errors import ImageError
from ferkit.faces import crop_face, detect_faces, find_faces, load_image, to_grey, whole_face

PHOTOS = Path(__file__).resolve().parents[1] / "../shared/data/photos"


def _png(path, im):
    im.save(path, format="PNG")
    return path


def test_load_image_sources_agree(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    p = _png(tmp_path / "a.png", Image.fromarray(rgb))
    for src in (p, str(p), p.read_bytes(), io.BytesIO(p.read_bytes()), Image.fromarray(rgb), rgb):
        out = load_image(src)
        assert out.dtype == np.uint8 and out.shape == (12, 20, 3) and np.array_equal(out, rgb)
    with open(p, "rb") as f:
        assert np.array_equal(load_image(f), rgb)



def test_a_bytes_path_is_told_to_be_given_as_a_str(tmp_path):
    """(load_image(b"/path/to/photo.jpg") read the path's bytes as the image: "not an image", no word of why)"""
    import os

    rgb = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    p = _png(tmp_path / "a.png", Image.fromarray(rgb))
    with pytest.raises(ImageError, match=r"^the image: not an image, .*; these bytes are the path of a file, .*a\.png: give it as a "
                                         r"str, os\.fsdecode\(path\) \(bytes are read as the image itself\)$") as e:
        load_image(os.fsencode(p))
    assert e.value.reason == "not_image"
    assert np.array_equal(load_image(os.fsdecode(os.fsencode(p))), rgb)  # the fix it names
    assert np.array_equal(load_image(bytearray(p.read_bytes())), rgb)  # an image's bytes are read as before
    for data in (os.fsencode(tmp_path / "none.png"), os.fsencode(tmp_path), b"not an image"):  # no file of that name
        with pytest.raises(ImageError) as e:
            load_image(data)
        assert "path of a file" not in str(e.value)


def test_load_image_modes(tmp_path):
    grey = load_image(_png(tmp_path / "l.png", Image.fromarray(np.full((5, 6), 77, np.uint8))))
    assert grey.shape == (5, 6, 3) and (grey == 77).all()

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red; the rest transparent -> white
    out = load_image(_png(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA")))
    assert tuple(out[0, 0]) == (255, 0, 0) and (out[1:, :] == 255).all()

    pal = Image.new("P", (3, 2))
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.putpixel((1, 1), 1)
    out = load_image(_png(tmp_path / "p.png", pal))
    assert tuple(out[1, 1]) == (10, 200, 30) and tuple(out[0, 0]) == (0, 0, 0)

    deep = np.array([[0, 257 * 100], [65535, 257]], np.uint16)
    out = load_image(_png(tmp_path / "i16.png", Image.fromarray(deep)))
    assert out[:, :, 0].tolist() == [[0, 100], [255, 1]]

    assert load_image(np.zeros((3, 3), np.float32) + 1.0)[0, 0, 0] == 255  # floats in 0..1 are scaled
    assert load_image(deep)[0, 1, 0] == 100
    assert load_image(np.zeros((3, 3, 1), np.uint8)).shape == (3, 3, 3)
    halves = np.array([[0.5, np.inf], [np.nan, 1.0]], np.float32)  # scaled as 0..1 floats: inf and nan do not count
    assert load_image(halves)[:, :, 0].tolist() == [[128, 255], [0, 255]]


def test_an_array_reads_as_the_pil_image_of_it_does():
    """(16-bit values in an int32 array, as np.asarray of a PIL "I" image gives them, or in a float one,
    were clipped to 255, a white photo, where the PIL image itself was scaled; timedelta64 passed as integers)"""
    deep = np.array([[0, 257 * 100], [65535, 257]], np.int32)
    for array in (deep, deep.astype(np.int64), deep.astype(np.uint32), deep.astype(np.float32)):
        out = load_image(array)
        assert out[:, :, 0].tolist() == [[0, 100], [255, 1]]
        assert np.array_equal(out, load_image(Image.fromarray(array if array.dtype == np.float32 else deep)))
    assert load_image(np.array([[0, 200]], np.int64))[0, :, 0].tolist() == [0, 200]  # 8-bit values in an int array
    low = np.array([[0, 200]], np.uint16)  # uint16 is 16-bit whatever its values, in either byte order (">u2" was not)
    assert load_image(low.astype(">u2")).tolist() == load_image(low).tolist() == [[[0] * 3, [1] * 3]]
    with pytest.raises(ImageError, match="arrays of dtype timedelta64"):
        load_image(np.zeros((4, 4), "timedelta64[s]"))
    # an ndarray subclass reads as its plain array (np.matrix was its max()'s TypeError 'unexpected keyword argument initial')
    assert load_image(np.matrix([[0.0, 0.5]]))[0, :, 0].tolist() == [0, 128]


def test_an_array_normalized_for_a_network_is_refused_not_read_as_a_dark_photo():
    """(an ImageNet-normalized photo, -2.1..2.6, was clipped to 0 and read as 0..255: a black photo, no face
    found; a crop of it 'neutral'; x / 127.5 - 1 lost every value under mid-grey)"""
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    for array in ((rgb / 255 - mean) / std, rgb / 127.5 - 1, (rgb - 128).astype(np.int16)):
        with pytest.raises(ImageError, match=r"the image: values from -[\d.]+ to [\d.]+ are not pixels, .*undo the normalization"):
            load_image(array)
    # a resampler's small overshoot below 0 is clipped, as before
    assert load_image(np.array([[-0.02, 0.5], [1.0, 0.0]]))[:, :, 0].tolist() == [[0, 128], [255, 0]]
    assert load_image(np.array([[-9.0, 100.0], [255.0, 0.0]]))[:, :, 0].tolist() == [[0, 100], [255, 0]]


def test_a_url_is_said_to_be_one_not_a_missing_file(tmp_path):
    """(Predictor.predict("https://.../photo.jpg") and predict_video of a URL were 'no such file; check the path',
    and the video's named as https:/...)"""
    from ferkit.video import predict_video

    for call, url in ((load_image, "https://example.com/a.jpg"), (lambda u: predict_video(None, u), "http://example.com/clip.mp4")):
        with pytest.raises(ImageError, match=f"^{url}: a URL; ferkit reads local files, not URLs: download it and give the file's path") as e:
            call(url)
        assert e.value.reason == "not_found"
    with pytest.raises(ImageError, match="^.*nope.jpg: no such file; check the path$"):  # a missing file as before
        load_image(str(tmp_path / "nope.jpg"))


def test_premultiplied_alpha_is_flattened_onto_white_as_alpha_is():
    """(a PIL image in mode La was 'corrupt or truncated': Pillow converts La to LA alone; RGBa's
    transparent pixels came out black where RGBA's are white)"""
    la = Image.fromarray(np.array([[[200, 255], [0, 0]]], np.uint8), "LA")
    rgba = la.convert("RGBA")
    for straight, premultiplied in ((la, la.convert("La")), (rgba, rgba.convert("RGBa"))):
        assert load_image(premultiplied).tolist() == load_image(straight).tolist() == [[[200] * 3, [255] * 3]]


def test_a_float_array_is_converted_with_one_float_copy():
    """(a float or int array took 75 bytes a pixel in float64 temporaries, 3 GB for one of the 40
    megapixels allowed; worked on in place, 39)"""
    import tracemalloc

    a = np.random.default_rng(0).random((100, 200, 3), dtype=np.float32)
    tracemalloc.start()
    try:
        load_image(a)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 100 * 200


def test_an_empty_or_all_nan_array_is_an_image_error_for_the_predictor_too():
    """(a (0, 0, 3) array reached the detector and divided by zero; an all-nan one passed as black)"""
    from ferkit import Predictor

    predictor = Predictor()
    for array in (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 100, 3), np.uint8), np.full((50, 50, 3), np.nan, np.float32)):
        with pytest.raises(ImageError, match="not an image"):
            predictor.predict(array)
        with pytest.raises(ImageError, match="not an image"):
            predictor.predict(array, crops=True)


def test_an_array_over_the_pixel_limit_is_refused_before_it_is_copied():
    """(a np.broadcast_to view of 10**10 pixels, which holds none of them, was numpy's MemoryError from
    the conversion or the detector; max_pixels="x" a TypeError from inside load_image)"""
    from ferkit import Predictor
    from ferkit.errors import FerkitError

    predictor = Predictor()
    for value in (np.uint8(128), np.float32(0.5)):
        huge = np.broadcast_to(value, (100_000, 100_000, 3))
        for read in (load_image, predictor.predict):
            with pytest.raises(ImageError, match="100000x100000 pixels is too large") as e:
                read(huge)
            assert e.value.reason == "too_large"
    with pytest.raises(ImageError, match="10x10 pixels is too large"):
        load_image(np.zeros((10, 10), np.uint8), max_pixels=99)
    assert load_image(np.zeros((10, 10), np.uint8), max_pixels=100).shape == (10, 10, 3)
    for max_pixels in ("x", None, 0, True):
        with pytest.raises(FerkitError, match=f"max_pixels must be a number of pixels >= 1; got {max_pixels!r}"):
            load_image(np.zeros((10, 10), np.uint8), max_pixels=max_pixels)


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((16, 32, 3), np.uint8)  # 32 wide, 16 high, red top-left corner
    a[:8, :8] = (255, 0, 0)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    p = tmp_path / "rot.jpg"
    im.save(p, format="JPEG", exif=exif.tobytes(), quality=100)
    out = load_image(p)
    assert out.shape == (32, 16, 3)  # upright: 16 wide, 32 high
    assert out[2, -3, 0] > 200 and out[2, -3, 1] < 60 and out[2, 2, 0] < 60  # the red corner is now top-right


def _bomb_png(w, h) -> bytes:
    """A PNG whose header claims w x h pixels (the data is a stub)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def test_bad_images_have_a_reason_and_name_the_file(tmp_path, monkeypatch):
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good, format="PNG")
    jpg = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpg, format="JPEG")
    (tmp_path / "text.jpg").write_text("this is not a picture\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "trunc.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "trunc.jpg").write_bytes(jpg.getvalue()[: len(jpg.getvalue()) // 2])
    (tmp_path / "bomb.png").write_bytes(_bomb_png(100_000, 100_000))
    cases = {"missing.png": "not_found", "text.jpg": "not_image", "empty.png": "not_image",
             "trunc.png": "corrupt", "trunc.jpg": "corrupt", "bomb.png": "too_large"}
    for name, reason in cases.items():
        with pytest.raises(ImageError) as e:
            load_image(tmp_path / name)
        assert e.value.reason == reason, name
        assert name in str(e.value)
    with pytest.raises(ImageError) as e:
        load_image(tmp_path)
    assert e.value.reason == "not_image" and "folder" in str(e.value)
    with pytest.raises(ImageError) as e:  # our own pixel limit
        load_image(good.getvalue(), name="upload.png", max_pixels=1000)
    assert e.value.reason == "too_large" and "upload.png" in str(e.value) and "megapixels" in str(e.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL's bomb warning is an error too
    with pytest.raises(ImageError) as e:
        load_image(good.getvalue())
    assert e.value.reason == "too_large"


def test_a_jpeg_of_too_many_scans_is_refused_before_its_decode(tmp_path):
    """Each scan of a progressive JPEG is a pass over the whole image's coefficients, and one over a blank image
    is a few bytes: 1,000 repeats of its last scan (125 KB) made a 16 MP photo decode for 45 s, and a 10 MB upload
    held a serve worker for hours. Such a file is refused from its markers, before the decode; real ones load,
    and scans inside an EXIF thumbnail or an MPO's later images are not counted."""
    from ferkit.faces import MAX_JPEG_SCANS, jpeg_scans

    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (40, 90, 160)).save(buf, format="JPEG", progressive=True)
    jpg = buf.getvalue()
    last, end = jpg.rindex(b"\xff\xda"), jpg.rindex(b"\xff\xd9")
    assert jpeg_scans(jpg, MAX_JPEG_SCANS) == 10  # libjpeg's progressive script

    def repeated(scans: int) -> bytes:  # the last scan (a refinement: nothing new) repeated
        return jpg[:end] + jpg[last:end] * (scans - 10) + jpg[end:]

    assert load_image(repeated(MAX_JPEG_SCANS)).shape == (256, 256, 3)
    (tmp_path / "scans.jpg").write_bytes(repeated(MAX_JPEG_SCANS + 1))
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / "scans.jpg")
    assert e.value.reason == "corrupt"
    assert str(e.value).startswith(f"{tmp_path / 'scans.jpg'}: a JPEG of over {MAX_JPEG_SCANS} scans, which no camera")
    thumb = b"Exif\0\0" + repeated(MAX_JPEG_SCANS + 1)[:60_000]  # an APP1 segment's bytes are skipped
    app1 = jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(thumb) + 2) + thumb + jpg[2:]
    assert jpeg_scans(app1, MAX_JPEG_SCANS) == 10 and load_image(app1).shape == (256, 256, 3)
    assert jpeg_scans(jpg + repeated(MAX_JPEG_SCANS + 1), MAX_JPEG_SCANS) == 10  # the first image ends at its EOI


@pytest.mark.parametrize("detector", ["yunet", "haar"])
def test_detects_the_astronaut_and_nothing_in_a_blank_photo(detector):
    from skimage import data

    from ferkit.video import iou

    rgb = data.astronaut()
    found = detect_faces(rgb, detector)
    assert len(found) == 1 and iou(found[0].box, (178, 63, 89, 112)) > 0.6  # the box drawn by hand in bench_detect.py
    assert detect_faces(np.full((300, 400, 3), 200, np.uint8), detector) == []
    assert find_faces(np.zeros((10, 10, 3), np.uint8), detector=detector) == []
    big = np.repeat(np.repeat(rgb, 3, axis=0), 3, axis=1)  # 1536 px: shrunk for detection, boxes and landmarks scaled back
    (b,) = detect_faces(big, detector)
    assert iou(b.box, tuple(3 * v for v in found[0].box)) > 0.6
    if detector == "yunet":
        assert np.abs(b.landmarks - 3 * found[0].landmarks).max() < 0.1 * b.box[2]
    (f,) = find_faces(to_grey(rgb), detector=detector)  # grey input
    assert f.face.shape == (48, 48) and f.face.dtype == np.uint8


def test_a_large_photo_with_small_faces_gets_a_second_finer_look_and_a_portrait_does_not(monkeypatch):
    """A group photo's faces, 10 px once shrunk to 640 px, are found by the look at fine_side; a
    portrait's large face needs no second look (one pass keeps a photo's time)."""
    from PIL import Image
    from skimage import data

    from ferkit.detectors import YuNet

    small = np.asarray(Image.fromarray(data.astronaut()).resize((160, 160), Image.Resampling.BOX))  # a face of ~28 px
    group = np.full((2048, 2048, 3), 128, np.uint8)
    group[:160, :160] = group[-160:, -160:] = small
    found = detect_faces(group)
    assert len(found) == 2 and all(20 < d.box[3] < 45 for d in found) and found[1].box[0] > 1800
    looks = []
    real = YuNet.__call__
    monkeypatch.setattr(YuNet, "__call__", lambda self, rgb, min_side=0: looks.append(rgb.shape[:2]) or real(self, rgb, min_side))
    portrait = np.repeat(np.repeat(data.astronaut(), 3, axis=0), 3, axis=1)  # 1536 px, one face of ~300 px
    assert len(detect_faces(portrait)) == 1 and looks == [(640, 640)]
    monkeypatch.setattr(YuNet, "fine_side", None)
    assert detect_faces(group) == []  # at 640 px alone they are too small


YUNET_640 = Path(__file__).resolve().parents[1] / "../shared/models/yunet/yunet_s_640_640.onnx"


@pytest.mark.skipif(not YUNET_640.exists(), reason=f"the fixed-size YuNet graph is not at {YUNET_640}")
@pytest.mark.parametrize("photo", ["astronaut", "group.jpeg"])
def test_yunet_decoding_matches_opencvs(photo):
    """ferkit decodes YuNet's raw maps (priors, boxes, landmarks, scores, NMS) in numpy: OpenCV's
    FaceDetectorYN, which decodes them in C++, must find the same faces on the same network."""
    import cv2
    from skimage import data

    from ferkit.detectors import YuNet

    rgb = data.astronaut() if photo == "astronaut" else load_image(PHOTOS / photo)
    scale = 640 / max(rgb.shape[:2])
    rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(np.pad(rgb, ((0, 640 - rgb.shape[0]), (0, 640 - rgb.shape[1]), (0, 0))))
    theirs = cv2.FaceDetectorYN.create(str(YUNET_640), "", (640, 640), 0.5, 0.3, 5000).detect(np.ascontiguousarray(rgb[:, :, ::-1]))[1]
    ours = YuNet(min_score=0.5)(rgb)
    assert len(ours) == len(theirs) >= 1
    ours = np.array([[*d.box, *d.landmarks.ravel(), d.score] for d in ours])
    np.testing.assert_allclose(ours[np.lexsort(ours[:, :2].T)], theirs[np.lexsort(theirs[:, :2].T)], atol=0.05)


def test_yunet_landmarks_where_the_face_is():
    from skimage import data

    from ferkit.detectors import YuNet

    d, *_ = YuNet(min_score=0.0)(data.astronaut())
    x, y, w, h = d.box
    eyes, nose, mouth = d.landmarks[:2], d.landmarks[2], d.landmarks[3:]
    assert (d.landmarks[:, 0] > x).all() and (d.landmarks[:, 0] < x + w).all() and (d.landmarks[:, 1] > y).all()
    assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]  # left to right in the photo
    assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()  # eyes above the nose above the mouth


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_every_detector_carries_its_working_size_and_box_geometry(name):
    from ferkit.detectors import DETECTORS, Detector

    cls = DETECTORS[name]
    assert issubclass(cls, Detector) and cls.side >= 320 and 0.5 < cls.box_to_square <= 1.5


def test_detection_in_worker_threads_agrees():
    from concurrent.futures import ThreadPoolExecutor

    from skimage import data

    rgb = data.astronaut()
    want = [d.box for d in detect_faces(rgb)]
    with ThreadPoolExecutor(3) as ex:
        got = list(ex.map(lambda _: [d.box for d in detect_faces(rgb)], range(6)))
    assert got == [want] * 6


def test_alignment_turns_a_tilted_face_upright():
    import cv2
    from matplotlib.cbook import get_sample_data

    from ferkit.faces import eye_angle

    with get_sample_data("grace_hopper.jpg") as fh:
        rgb = np.asarray(Image.open(fh).convert("RGB"))
    (upright,) = find_faces(rgb)
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -20, 1.0)  # turn the photo 20 degrees clockwise
    tilted = cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    (f,) = find_faces(tilted)
    assert f.angle == eye_angle(f.landmarks) and f.angle > 10  # the eyes slope down to the right
    (plain,) = find_faces(tilted, align=False)
    assert plain.angle == 0
    diff = lambda a: np.abs(a.face.astype(int) - upright.face.astype(int)).mean()  # noqa: E731
    assert diff(f) < diff(plain)  # the aligned crop is closer to the upright face
    # angle > 0 turns the photo counter-clockwise about the square's centre (what levels eyes sloping down to the right)
    grad = np.tile(np.arange(100, dtype=np.uint8), (100, 1))
    turned = crop_face(grad, (0, 0, 100, 100), margin=0, size=100, angle=90)
    assert np.abs(turned.astype(int) - np.rot90(grad, 1).astype(int)).max() <= 2


def test_whole_face_is_the_centre_square():
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, 20:80] = 255  # the centre 60x60 square is white, the sides black
    face = whole_face(img)
    assert face.shape == (48, 48) and face.min() == 255



def test_the_face_functions_take_any_image_load_image_reads(tmp_path):
    # an RGBA PNG's array, floats, a PIL image, a path: as Predictor.predict takes them (were numpy's
    # "could not broadcast", Pillow's "Cannot handle this data type", "'str' object has no attribute 'ndim'")
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, 20:80] = 255
    rgba = np.concatenate([img, np.full((60, 100, 1), 255, np.uint8)], axis=2)
    path = _png(tmp_path / "a.png", Image.fromarray(rgba))
    for src in (rgba, img / 255.0, img.astype(bool), Image.fromarray(rgba), path, str(path)):
        assert whole_face(src).min() == 255 and whole_face(src, 112, 3).shape == (112, 112, 3)
        assert detect_faces(src) == [] and find_faces(src) == [] and find_faces(src, channels=3) == []
    for bad, why in ((np.zeros(10, np.uint8), r"shape \(10,\) is not an image"), (np.zeros((0, 0, 3), np.uint8), "shape"),
                     (np.zeros((9, 9, 5), np.uint8), "shape"), (None, "cannot read an image from a NoneType")):
        for f in (whole_face, detect_faces, find_faces):
            with pytest.raises(ImageError, match=why):
                f(bad)


def test_min_face_size_and_channels_are_checked_as_predict_checks_them():
    """(detect_faces(min_face='a') was a TypeError and min_face=2 silently []; size=0 a ZeroDivisionError,
    whole_face(size=-5) a (0, 0) array, channels=2 silently an RGB crop)"""
    from ferkit.errors import FerkitError

    img = np.zeros((60, 100, 3), np.uint8)
    for min_face in ("a", "0.1", 2, 0, float("nan"), True):
        for f in (detect_faces, find_faces):
            with pytest.raises(FerkitError, match=f"^min_face must be None .* in \\(0, 1\\]; got {re.escape(repr(min_face))}$"):
                f(img, min_face=min_face)
    for kwargs, said in [(dict(size=0), "size must be a whole number >= 1 (the crop's side in pixels); got 0"),
                         (dict(size=-5), "got -5"), (dict(size=4.0), "got 4.0"), (dict(size=True), "got True"),
                         (dict(channels=2), "channels must be 1 (a grey crop) or 3 (RGB); got 2"),
                         (dict(channels=True), "got True"), (dict(channels="3"), "got '3'"),
                         (dict(size=0, channels=2), "size must be a whole number >= 1 (the crop's side in pixels); got 0; "
                                                    "channels must be 1 (a grey crop) or 3 (RGB); got 2")]:
        for f in (whole_face, find_faces):
            with pytest.raises(FerkitError, match=re.escape(said)):
                f(img, **kwargs)
    assert detect_faces(img, min_face=np.float32(1)) == [] and whole_face(img, np.int64(8), np.int64(3)).shape == (8, 8, 3)


def test_crop_face_checks_its_arguments():
    """(size=0 was a ZeroDivisionError, 4.0 a TypeError, a NaN margin or a box of 3 numbers a ValueError; a NaN box
    or angle, margin=-0.5 or a box of no width silently a crop of something else)"""
    from ferkit.errors import FerkitError

    grey, box = np.zeros((60, 100), np.uint8), (10, 10, 30, 30)
    nan = float("nan")
    for args, kwargs, said in [
            ((box,), dict(size=0), "size must be a whole number >= 1 (the crop's side in pixels); got 0"),
            ((box,), dict(size=-5), "got -5"), ((box,), dict(size=4.0), "got 4.0"), ((box,), dict(size=True), "got True"),
            ((box,), dict(margin=-0.5), "margin must be a number > -0.5 and <= 2 (the widening of each side, a fraction "
                                        "of the box's side); got -0.5"),
            ((box,), dict(margin=1e308), "got 1e+308"), ((box,), dict(margin=50), "got 50"),
            ((box,), dict(margin=nan), "got nan"), ((box,), dict(margin="0.1"), "got '0.1'"),
            ((box,), dict(angle=float("inf")), "angle must be a finite number of degrees; got inf"),
            (((10, 10, 30),), {}, "box must be 4 finite numbers (x, y, w, h) with w and h > 0; got (10, 10, 30)"),
            (((10, 10, 0, 30),), {}, "got (10, 10, 0, 30)"), (((10, nan, 30, 30),), {}, "got (10, nan, 30, 30)"),
            ((None,), {}, "got None"), (("10,10,30,30",), {}, "got '10,10,30,30'"),
            (((10, 10, 0, 30),), dict(size=0, angle=nan), "size must be a whole number >= 1 (the crop's side in pixels); "
                                                          "got 0; angle must be a finite number of degrees; got nan; box must")]:
        with pytest.raises(FerkitError, match=re.escape(said)):
            crop_face(grey, *args, **kwargs)
    with pytest.raises(FerkitError, match=r"^margin must be a number > -0\.5 and <= 2 .*; got nan$"):
        find_faces(grey, margin=nan)  # at entry, before a face is looked for
    assert crop_face(grey, np.array([10.0, 10, 30, 30], np.float32), np.float32(0), np.int64(8), np.float64(5)).shape == (8, 8)



def test_find_faces_checks_the_crop_once_a_photo(monkeypatch):
    """(each face's crop_face checked the size and margin find_faces had checked for the photo: once a face)"""
    from skimage import data

    import ferkit.faces
    from ferkit.detectors import get_detector

    rgb = data.astronaut()
    two = np.concatenate([rgb, rgb[:, ::-1]], 1)  # two faces, one turned to each side
    checks, check = [], ferkit.faces._check_crop
    monkeypatch.setattr(ferkit.faces, "_check_crop", lambda *a, **k: checks.append(a) or check(*a, **k))
    for channels in (1, 3):
        checks.clear()
        faces = find_faces(two, margin=0.2, size=40, channels=channels)
        assert len(faces) == 2 and len(checks) == 1
        image = to_grey(two) if channels == 1 else two
        to_square = get_detector("yunet").box_to_square
        for f, d in zip(faces, detect_faces(two)):  # each crop still crop_face's, framed as the detector's box says
            x, y, w, h = d.box
            s = max(w, h) * to_square
            assert np.array_equal(f.face, crop_face(image, (x + w / 2 - s / 2, y + h / 2 - s / 2, s, s), 0.2, 40, f.angle))

def test_crop_is_square_and_pads_at_the_edge():
    grey = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    c = crop_face(grey, (0, 0, 40, 40))
    assert c.shape == (48, 48) and c.dtype == np.uint8
    inner = crop_face(grey, (30, 30, 40, 20), margin=0)  # a 40-wide box gives a 40x40 crop
    assert inner.shape == (48, 48)
    # outside the photo its edge pixels repeat (not a fill colour), at the photo's resolution and from k x k means
    rows = np.r_[np.full(20, 40), np.linspace(40, 200, 60), np.full(20, 200)].round().astype(np.uint8)
    ramp = np.tile(rows[:, None], (1, 120))  # 40 at the top, 200 at the bottom (20 rows each), a ramp between
    for side in (30, 1000):  # sampled at full resolution; at 1/k (k x k means of the edge rows: the same)
        below = crop_face(ramp, (20, 150, side, side), margin=0)
        assert below.min() == below.max() == 200
        above = crop_face(ramp, (20, -2 * side, side, side), margin=0, angle=30)
        assert above.min() == above.max() == 40
    half = crop_face(ramp, (0, 80, 120, 40), margin=0)  # half inside: the photo's bottom rows, then row 99 repeated
    assert (np.diff(half[:, 24].astype(int)) >= 0).all() and half[-12:].min() == 200 and half[0, 0] < 200


def test_crop_far_past_the_photo_pads_in_bounded_memory():
    """A square far past the photo is the crop of the photo padded by its edges, without that padding: a 7200-pixel
    square padded the photo to 7200x7200 (margin=50 on a 500-pixel box: 50,500x50,500). One over 48x the photo's
    shorter side (the photo under a pixel of the crop across) is refused: w=1e300 was an OverflowError."""
    import tracemalloc

    from ferkit.errors import FerkitError

    rng = np.random.default_rng(3)
    for shape in ((60, 80), (60, 80, 3)):
        photo = rng.integers(0, 256, shape, dtype=np.uint8)
        for box, angle in (((-900, 30, 1500, 1400), 20.0), ((70, -1200, 1000, 1000), 0.0), ((2000, 2000, 300, 300), -35.0)):
            padded = np.pad(photo, ((2000, 2000), (2000, 2000)) + ((0, 0),) * (photo.ndim - 2), mode="edge")
            moved = (box[0] + 2000, box[1] + 2000) + box[2:]
            assert np.array_equal(crop_face(photo, box, 0.3, 64, angle), crop_face(padded, moved, 0.3, 64, angle))
    tracemalloc.start()
    crop_face(np.zeros((200, 200), np.uint8), (-3000, -3000, 6000, 6000), angle=10.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000, peak
    for box in ((10, 10, 1e300, 1e300), (10, 10, 4001, 100)):
        with pytest.raises(FerkitError, match=r"^box \(10, 10, .*\) with margin 0\.1 frames a square over 48 x the photo's "
                                              r"shorter side \(100 pixels\): the photo would fill under one pixel"):
            crop_face(np.zeros((200, 100), np.uint8), box)
    assert crop_face(np.zeros((200, 100), np.uint8), (10, 10, 4000, 100)).shape == (48, 48)


DEMO = Path(__file__).resolve().parents[1] / "src/ferkit/samples/astronaut.jpg"


def _opencv_crop(image, box, margin, size, angle):
    """The crop as ferkit drew it with OpenCV (until the light install dropped it): the square warped
    at the photo's resolution (bilinear, edge pixels repeated), then shrunk with INTER_AREA."""
    import cv2

    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    side = max(1, int(round(max(w, h) * (1 + 2 * margin))))
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[:, 2] += (side / 2 - cx, side / 2 - cy)
    crop = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)


@pytest.mark.parametrize("colour", [False, True])
def test_crop_matches_opencvs_warp_and_area_shrink(colour):
    """crop_face (Pillow and numpy) frames, turns, pads and shrinks as OpenCV's warpAffine + INTER_AREA
    did: the same pixels up to rounding where it samples at the photo's resolution, a little softer
    where a large face is sampled from k x k means (faces.REDUCE)."""
    pytest.importorskip("cv2")
    from ferkit import faces

    rgb = load_image(DEMO)
    image = rgb if colour else to_grey(rgb)
    rng = np.random.default_rng(0)
    full, reduced = [], []
    for _ in range(80):
        w = rng.uniform(8, 700)
        box = (rng.uniform(-80, 480), rng.uniform(-80, 480), w, w * rng.uniform(0.8, 1.25))
        angle, size, margin = rng.uniform(-45, 45) if rng.random() < 0.8 else 0.0, int(rng.choice([48, 64, 112])), 0.1
        ours, theirs = crop_face(image, box, margin, size, angle), _opencv_crop(image, box, margin, size, angle)
        assert ours.shape == theirs.shape == (size, size) + image.shape[2:] and ours.dtype == np.uint8
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        side = round(max(box[2:]) * (1 + 2 * margin))
        (full if side < faces.REDUCE * size else reduced).append(diff)
    assert len(full) > 20 and len(reduced) > 20
    assert max(d.max() for d in full) <= 3 and max(d.mean() for d in full) < 0.75  # OpenCV's fixed-point bilinear weights
    assert max(d.max() for d in reduced) <= 16 and max(d.mean() for d in reduced) < 1.2
    # a whole face crop (whole_face): OpenCV's INTER_AREA / INTER_LINEAR of the centre square
    import cv2

    for shape in ((60, 100, 3), (30, 20, 3), (48, 48, 3), (500, 420, 3)):
        im = rng.integers(0, 256, shape, dtype=np.uint8)
        h, w, s = shape[0], shape[1], min(shape[:2])
        sq = to_grey(im)[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        want = cv2.resize(sq, (48, 48), interpolation=cv2.INTER_AREA if s > 48 else cv2.INTER_LINEAR)
        assert np.abs(whole_face(im).astype(int) - want).max() <= 1


def test_crop_keeps_the_channels():
    """A colour photo gives a colour crop: each channel is the crop of that channel alone."""
    rgb = load_image(DEMO)
    for box, size in (((150, 40, 140, 150), 64), ((-30, -20, 520, 500), 48)):  # sampled at full resolution; at 1/k, beyond the edges
        c = crop_face(rgb, box, size=size, angle=12.0)
        assert c.shape == (size, size, 3) and c.dtype == np.uint8
        for ch in range(3):
            assert np.array_equal(c[:, :, ch], crop_face(np.ascontiguousarray(rgb[:, :, ch]), box, size=size, angle=12.0))
    assert to_grey(rgb).shape == rgb.shape[:2] and np.array_equal(to_grey(to_grey(rgb)), to_grey(rgb))
    assert np.array_equal(to_grey(rgb), np.asarray(Image.fromarray(rgb).convert("L")))


def test_yunet_nms_matches_opencvs():
    """YuNet's non-maximum suppression (numpy) keeps the boxes OpenCV's dnn.NMSBoxes keeps, in its order."""
    cv2 = pytest.importorskip("cv2")
    from ferkit.detectors import YuNet

    yunet = YuNet.__new__(YuNet)  # _nms alone: no graph needed
    rng = np.random.default_rng(1)
    for trial in range(300):
        n = int(rng.integers(1, 80))
        yunet.min_score = float(rng.choice([0.0, 0.3, 0.7]))
        boxes = np.hstack([rng.uniform(0, 100, (n, 2)), rng.uniform(5, 60, (n, 2))]).astype(np.float32)
        scores = rng.uniform(0.01, 1, n).astype(np.float32)
        if trial % 3 == 0:
            scores = scores.round(1)  # ties: kept in their order, as OpenCV's stable sort does
        theirs = np.asarray(cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), yunet.min_score, YuNet.NMS_IOU), int).reshape(-1)
        ours = yunet._nms(boxes, scores, np.zeros((n, 5, 2), np.float32))
        assert [d.box for d in ours] == [tuple(float(v) for v in boxes[i]) for i in theirs]


def _seed_images() -> dict[str, bytes]:
    """Small valid files of each accepted format, in the modes and codecs photos come in."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    grey, pal = rgb.convert("L"), rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    seeds = {}
    for name, im, fmt, kw in [("jpg", rgb, "JPEG", {}), ("progressive.jpg", rgb, "JPEG", {"progressive": True}),
                              ("grey.jpg", grey, "JPEG", {}), ("png", rgb, "PNG", {}), ("rgba.png", rgb.convert("RGBA"), "PNG", {}),
                              ("p.png", pal, "PNG", {}), ("tif", rgb, "TIFF", {}), ("lzw.tif", rgb, "TIFF", {"compression": "tiff_lzw"}),
                              ("p.tif", pal, "TIFF", {}), ("deflate.tif", grey, "TIFF", {"compression": "tiff_adobe_deflate"}),
                              ("gif", pal, "GIF", {}), ("bmp", rgb, "BMP", {}), ("p.bmp", pal, "BMP", {}),
                              ("webp", rgb, "WEBP", {}), ("lossless.webp", rgb, "WEBP", {"lossless": True}), ("ppm", rgb, "PPM", {})]:
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        seeds[name] = buf.getvalue()
    return seeds


def _refused_seeds() -> dict[str, bytes]:
    """Small files of formats load_image refuses (their decoders raised uncaught errors on damaged files)."""
    seeds = {}
    for fmt, mode in (("ICO", "RGB"), ("IM", "RGB"), ("DDS", "RGBA"), ("BLP", "P"), ("SPIDER", "F"), ("TGA", "RGB"),
                      ("PCX", "RGB"), ("SGI", "RGB")):
        buf = io.BytesIO()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                Image.new(mode, (16, 16), 0 if mode in ("P", "F") else (10, 20, 30)[: len(mode)]).save(buf, format=fmt)
        except (KeyError, OSError, ValueError):
            continue  # this Pillow cannot write it
        seeds[fmt] = buf.getvalue()
    return seeds


def test_refused_formats_are_not_images():
    """Formats a photo tool does not need (whose decoders raised uncaught errors on damaged files) are refused."""
    seeds = _refused_seeds()
    for fmt, data in seeds.items():
        with pytest.raises(ImageError) as e:
            load_image(data, name=f"x.{fmt.lower()}")
        assert e.value.reason == "not_image" and "JPEG, PNG" in str(e.value)
    assert len(seeds) >= 5


def test_fuzzed_images_never_raise_anything_but_image_error():
    """Thousands of damaged files (byte flips, truncations, insertions, deletions, repeats of the
    seeds above): each either decodes to an RGB uint8 image or raises ImageError with a reason."""
    rng = np.random.default_rng(1234)
    seeds = list(_seed_images().items())
    for name, data in seeds:  # the seeds themselves decode
        assert load_image(data, name=name).shape[2] == 3
    seeds += list(_refused_seeds().items())
    reasons = {"not_image", "corrupt", "too_large"}
    counts = {"ok": 0, **{r: 0 for r in reasons}}
    for i in range(3000):
        name, data = seeds[i % len(seeds)]
        b = bytearray(data)
        kind = rng.integers(5)
        if kind == 0:  # flip a few bytes, often in the header where the decoders read sizes and offsets
            for _ in range(rng.integers(1, 9)):
                pos = rng.integers(min(len(b), 64)) if rng.random() < 0.6 else rng.integers(len(b))
                b[pos] = rng.integers(256)
        elif kind == 1:  # truncate
            b = b[: rng.integers(1, len(b))]
        elif kind == 2:  # insert random bytes
            pos = rng.integers(len(b))
            b[pos:pos] = rng.integers(0, 256, rng.integers(1, 16), dtype=np.uint8).tobytes()
        elif kind == 3:  # delete a run
            pos = rng.integers(len(b))
            del b[pos : pos + rng.integers(1, 32)]
        else:  # repeat a run
            pos = rng.integers(len(b))
            b[pos:pos] = b[pos : pos + rng.integers(1, 64)]
        try:
            out = load_image(bytes(b), name=f"fuzz{i}.{name}")
        except ImageError as e:
            assert e.reason in reasons and f"fuzz{i}.{name}" in str(e)
            counts[e.reason] += 1
        else:
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            counts["ok"] += 1
    assert counts["corrupt"] > 100 and counts["ok"] > 100, counts  # the mutations reached the decoders


def test_damaged_tiffs_print_nothing_on_stderr():
    """libtiff's C-level lines (ZIPDecode: Decoding error ...) and Pillow's TIFF log lines (More
    samples per pixel than can be decoded) reach stderr past Python: only a fresh process with
    nothing configured shows them (pytest captures logging)."""
    import subprocess
    import sys

    script = """
import io, random
import numpy as np
from PIL import Image
from ferkit.errors import ImageError
from ferkit.faces import load_image
buf = io.BytesIO()
Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="TIFF", compression="tiff_deflate")
rng, good, failed = random.Random(0), buf.getvalue(), 0
for _ in range(8):  # damaged in 3 random bytes: decoding errors, bad fields, absurd samples per pixel
    data = bytearray(good)
    for _ in range(3):
        data[rng.randrange(8, len(data))] = rng.randrange(256)
    try:
        load_image(bytes(data))
    except ImageError:
        failed += 1
print(failed)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and int(r.stdout) >= 6, r
    assert r.stderr == ""


def test_a_link_loop_is_named_as_one_not_as_a_permission_problem(tmp_path):
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    with pytest.raises(ImageError, match="a symbolic link that leads back to itself; fix or remove the link") as e:
        load_image(tmp_path / "a.jpg")
    assert "permissions" not in str(e.value)


def test_paths_and_file_objects_that_cannot_be_read_are_image_errors(tmp_path):
    """(an os.PathLike other than Path was 'cannot read an image from a ...'; "" read the current folder;
    a NUL in a path, a closed file or one open for writing were Python's bare ValueError; a file object
    on an endless stream was read into memory without a bound)"""
    photo = _png(tmp_path / "a.png", Image.new("RGB", (4, 3)))

    class PathLike:
        def __fspath__(self):
            return str(photo)

    assert load_image(PathLike()).shape == (3, 4, 3)
    closed = open(photo, "rb")
    closed.close()
    with open(tmp_path / "w", "wb") as for_writing:
        for src, reason, message in [("", "not_found", "the path: empty"), ("a\0b", "not_found", "not a path .embedded null byte"),
                                     (closed, "not_found", "cannot read the file .ValueError"),
                                     (for_writing, "not_found", "cannot read the file .UnsupportedOperation")]:
            with pytest.raises(ImageError, match=message) as e:
                load_image(src)
            assert e.value.reason == reason
    with open("/dev/zero", "rb") as endless, pytest.raises(ImageError, match="/dev/zero: over 17 MiB is too big") as e:
        load_image(endless, max_pixels=100_000)
    assert e.value.reason == "too_large"


def test_a_file_too_big_for_a_photo_is_refused_unread(tmp_path):
    """(a 7 GB file was read whole before any check: a MemoryError traceback lost the run's earlier results)"""
    from ferkit.faces import MAX_PIXELS, max_file_bytes

    big = tmp_path / "big.tif"
    with open(big, "wb") as f:  # sparse: no disk used
        f.truncate(max_file_bytes(MAX_PIXELS) + 1)
    with pytest.raises(ImageError, match=r"big.tif: [0-9,]+ MiB is too big for a photo of at most 40 megapixels") as e:
        load_image(big)
    assert e.value.reason == "too_large"


def test_a_name_too_long_is_a_message():
    from ferkit.jobs import collect_inputs

    name = "a" * 300 + ".jpg"  # (quoted by its start and its length: 100,000 characters came back whole)
    with pytest.raises(ImageError, match=r"^a{200}\.\.\. \(304 characters\): cannot read the file \(File name too long\)"):
        load_image(name)
    assert collect_inputs([name]) == ([], [f"{'a' * 200}... (304 characters): cannot use it (File name too long); check the path"])


def test_max_upload_pixels_is_held_to_what_pillow_decodes():
    from ferkit.errors import FerkitError
    from ferkit.settings import Settings

    with pytest.raises(FerkitError, match=rf"--max-upload-pixels 200000000: must be at most {Image.MAX_IMAGE_PIXELS} \(Pillow"):
        Settings(max_upload_pixels=200_000_000).check()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="the peak is read from Linux's /proc")
def test_load_image_decodes_a_large_photo_without_spare_copies(tmp_path):
    """load_image's peak was 18 bytes a pixel for an RGB JPEG and 24 for an RGBA PNG (a 16 MP one: 290 and 380 MB):
    an upright image copied by exif_transpose, an RGB one copied by convert("RGB"), and numpy's array made through
    tobytes(), which joins its chunks into a second copy; 13 for a 16-bit grey PNG, made floats whole through tobytes
    (now 7: its file, its image and the array). Measured in a fresh process (the peak reset before the call)."""
    import subprocess
    import sys

    n = 2000  # 4 MP: the copies dwarf the decoders' own buffers
    y, x = np.mgrid[0:n, 0:n] / n
    rgb = np.clip(np.stack([128 + 100 * np.sin(6 * x + 3 * y), 128 + 100 * np.cos(5 * y), 128 + 90 * np.sin(4 * (x - y))], 2)
                  + np.random.default_rng(0).normal(0, 6, (n, n, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg", quality=90)
    Image.fromarray(np.dstack([rgb, (255 * x).astype(np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 256 + rgb[:, :, 1]).save(tmp_path / "grey16.png")  # (I;16)
    script = """
import sys
from ferkit.faces import load_image
load_image(sys.argv[1].replace(".jpg", "-small.jpg").replace(".png", "-small.png"))  # the decoder's libraries loaded
def kb(key): return int(next(line for line in open("/proc/self/status") if line.startswith(key)).split()[1])
open("/proc/self/clear_refs", "w").write("5")  # VmHWM from here
before = kb("VmRSS:")
rgb = load_image(sys.argv[1])
print((kb("VmHWM:") - before) * 1024 / (rgb.shape[0] * rgb.shape[1]))
"""
    for name, most in (("rgb.jpg", 11), ("rgba.png", 17), ("grey16.png", 9)):
        Image.open(tmp_path / name).resize((64, 64)).save(tmp_path / name.replace(".", "-small."))
        r = subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert float(r.stdout) < most, f"{name}: {float(r.stdout):.1f} bytes a pixel at load_image's peak"


def test_load_image_turns_a_photo_upright_by_its_exif_orientation(tmp_path):
    a = np.zeros((2, 3, 3), np.uint8)
    a[0, 0] = 255  # a white top-left pixel of a 3 wide, 2 high image
    for orientation, shape, white in ((1, (2, 3), (0, 0)), (6, (3, 2), (0, 1)), (8, (3, 2), (2, 0)), (3, (2, 3), (1, 2))):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(a).save(tmp_path / "o.png", exif=exif)
        out = load_image(tmp_path / "o.png")
        assert out.shape[:2] == shape and tuple(np.argwhere(out[:, :, 0] == 255)[0]) == white, orientation
