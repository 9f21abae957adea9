import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ferkit.errors import ImageError
from ferkit.faces import crop_face, detect_faces, find_faces, load_image, to_grey


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


def test_detects_the_astronaut_and_nothing_in_a_blank_photo():
    from skimage import data

    from ferkit.predict import iou

    rgb = data.astronaut()
    boxes = detect_faces(rgb)
    assert len(boxes) == 1 and iou(boxes[0], (177, 66, 95, 95)) > 0.6
    assert detect_faces(np.full((300, 400, 3), 200, np.uint8)) == []
    assert find_faces(np.zeros((10, 10, 3), np.uint8)) == []
    big = np.repeat(np.repeat(rgb, 3, axis=0), 3, axis=1)  # 1536 px: shrunk for detection, boxes scaled back
    (b,) = detect_faces(big)
    assert iou(b, tuple(3 * v for v in boxes[0])) > 0.6
    (f,) = find_faces(to_grey(rgb))  # grey input
    assert f.face.shape == (48, 48) and f.face.dtype == np.uint8


def test_crop_is_square_and_pads_at_the_edge():
    grey = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    c = crop_face(grey, (0, 0, 40, 40))
    assert c.shape == (48, 48) and c.dtype == np.uint8
    inner = crop_face(grey, (30, 30, 40, 20), margin=0)  # a 40-wide box gives a 40x40 crop
    assert inner.shape == (48, 48)
