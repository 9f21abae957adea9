"""Training-time augmentation on batches of tensors (no torchvision): flip, photo degradations
(JPEG, blur, low resolution, exposure), shift, rotate, zoom, erase, and mixing faces in pairs (mixup, CutMix).

All functions take x (B, C, H, W) already mean-subtracted (0 = the mean face), grey (C = 1) or
colour (C = 3) at any size, and a torch.Generator, and return a new batch. Add a new augmentation here and call it in `augment`.
Every random draw comes from that generator (numpy's, where torch has no sampler, seeded from it),
so a run resumed from its checkpoint draws what the uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .preprocess import PIXEL_SCALE

# Photo degradations (--photo-aug): the ranges each is drawn from, mild to what a phone, a chat
# app or a webcam does to a face that ends up 48x48.
JPEG_QUALITY = (30, 90)  # JPEG re-compression quality, inclusive
BLUR_SIGMA = (0.5, 1.5)  # Gaussian blur, pixels
DOWNSCALE = (0.35, 0.75)  # side of the low-resolution copy, as a fraction (17-36 px of 48)
BRIGHTNESS = 25.0  # +- grey levels added
CONTRAST = (0.7, 1.3)  # gain about mid-grey
GAMMA = (0.7, 1.5)  # exponent on 0..1 intensities (log-uniform): > 1 darkens mid-greys


def flip_mask(batch: int, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Which samples to mirror (B,) bool; the caller needs it to pick the flipped HOG too."""
    return torch.rand(batch, generator=generator) < p


def flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror the samples where mask is True (horizontal flip, paper)."""
    return torch.where(mask.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


def shift_rotate(x: torch.Tensor, generator: torch.Generator, max_shift: int = 0, max_deg: float = 0.0,
                 max_zoom: float = 0.0) -> torch.Tensor:
    """Random shift by up to +-max_shift pixels (a random crop of the zero-padded image), rotation
    by up to +-max_deg degrees and zoom by a factor in [1/(1 + max_zoom), 1 + max_zoom] (log-uniform:
    as many crops tighter as looser, as a detector's box and margin vary on photos), as one affine
    resampling."""
    if not max_shift and not max_deg and not max_zoom:
        return x
    b, _, h, w = x.shape
    ang = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(max_deg)
    shift = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=generator).float()
    # drawn only when on, so that runs without it (and their resumes) draw what they always did
    zoom = torch.exp((torch.rand(b, generator=generator) * 2 - 1) * math.log1p(max_zoom)) if max_zoom else torch.ones(b)
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom  # the grid samples a 1/zoom-sized window: the face grows by zoom
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos, -sin, shift[:, 0] * 2 / w
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin, cos, shift[:, 1] * 2 / h
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def erase(x: torch.Tensor, generator: torch.Generator, p: float = 0.0, area=(0.02, 0.2)) -> torch.Tensor:
    """Random erasing: with probability p, set a random rectangle (2-20% of the face) to 0 (the mean)."""
    if not p:
        return x
    b, _, h, w = x.shape
    on = torch.rand(b, generator=generator) < p
    frac = area[0] + torch.rand(b, generator=generator) * (area[1] - area[0])
    aspect = torch.exp((torch.rand(b, generator=generator) - 0.5) * 2 * math.log(3))
    eh = (torch.sqrt(frac * aspect) * h).clamp(1, h).long()
    ew = (torch.sqrt(frac / aspect) * w).clamp(1, w).long()
    y0 = (torch.rand(b, generator=generator) * (h - eh + 1).float()).long()
    x0 = (torch.rand(b, generator=generator) * (w - ew + 1).float()).long()
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    box = (ys >= y0.view(-1, 1, 1)) & (ys < (y0 + eh).view(-1, 1, 1)) & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + ew).view(-1, 1, 1))
    keep = ~(box & on.view(-1, 1, 1))
    return x * keep.unsqueeze(1).to(x.device, x.dtype)


def tone(face: np.ndarray, brightness: float = 0.0, contrast: float = 1.0, gamma: float = 1.0) -> np.ndarray:
    """Exposure of a float face in 0..255: gamma on 0..1 intensities, contrast about mid-grey, then brightness."""
    v = 255.0 * (np.clip(face, 0, 255) / 255.0) ** gamma
    return np.clip((v - 128.0) * contrast + 128.0 + brightness, 0, 255).astype(np.float32)


def blur(face: np.ndarray, sigma: float) -> np.ndarray:
    """Out of focus: a Gaussian blur of standard deviation sigma pixels."""
    import cv2

    return cv2.GaussianBlur(face, (0, 0), sigma)


def rescale(face: np.ndarray, factor: float) -> np.ndarray:
    """Low resolution: down to factor of the side (area averaging) and back up (bilinear), losing the fine detail."""
    import cv2

    h, w = face.shape[:2]
    small = cv2.resize(face, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def jpeg(face: np.ndarray, quality: int) -> np.ndarray:
    """JPEG re-compression at quality (OpenCV's encoder) of the face rounded to uint8; grey (H, W) or RGB (H, W, 3)."""
    import cv2

    pixels = np.clip(face, 0, 255).round().astype(np.uint8)
    colour = pixels.ndim == 3
    ok, buf = cv2.imencode(".jpg", pixels[..., ::-1] if colour else pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])  # OpenCV's BGR
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    return np.ascontiguousarray(out[..., ::-1] if colour else out).astype(np.float32)


def degrade(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A face (H, W) grey or (H, W, 3) RGB, float 0..255, as a photo might have left it: each of
    exposure, blur, low resolution and JPEG (in the order a photo meets them) with probability 1/2,
    at least one, at parameters drawn from the ranges above."""
    on = rng.random(4) < 0.5
    if not on.any():
        on[rng.integers(4)] = True
    if on[0]:
        face = tone(face, rng.uniform(-BRIGHTNESS, BRIGHTNESS), rng.uniform(*CONTRAST), math.exp(rng.uniform(*np.log(GAMMA))))
    if on[1]:
        face = blur(face, rng.uniform(*BLUR_SIGMA))
    if on[2]:
        face = rescale(face, rng.uniform(*DOWNSCALE))
    if on[3]:
        face = jpeg(face, rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    return face


def photo(x: torch.Tensor, generator: torch.Generator, p: float, mean: np.ndarray) -> torch.Tensor:
    """With probability p per face, `degrade` it: in pixels (x * PIXEL_SCALE + mean, the mean image
    (H, W) grey or (H, W, 3) colour it was centred on), so JPEG and the rest see the face as a photo
    has it, then centred again."""
    if not p:
        return x
    on = torch.rand(len(x), generator=generator) < p
    if not on.any():
        return x
    rng, m = numpy_rng(generator), torch.from_numpy(np.asarray(mean, np.float32))
    m = m if m.dim() == 3 else m.unsqueeze(-1)  # (H, W, C)
    pixels = (x[on].permute(0, 2, 3, 1) * PIXEL_SCALE + m).numpy()  # (K, H, W, C)
    grey = pixels.shape[-1] == 1  # degraded as (H, W): OpenCV drops a lone channel axis
    out = np.stack([degrade(face[..., 0], rng)[..., None] if grey else degrade(face, rng) for face in pixels])
    x = x.clone()
    x[on] = ((torch.from_numpy(out) - m) / PIXEL_SCALE).permute(0, 3, 1, 2)
    return x


def augment(x: torch.Tensor, generator: torch.Generator, crop_pad: int = 0, rotate: float = 0.0, erase_p: float = 0.0,
            photo_p: float = 0.0, mean: np.ndarray | None = None, zoom: float = 0.0) -> torch.Tensor:
    """Every augmentation after the flip, in order: photo degradations (which need the mean image),
    shift/rotate/zoom, then erasing."""
    return erase(shift_rotate(photo(x, generator, photo_p, mean), generator, crop_pad, rotate, zoom), generator, erase_p)


def numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy generator seeded from the torch one (for Beta draws and OpenCV's parameters)."""
    return np.random.default_rng(torch.randint(0, 2**62, (1,), generator=generator).item())


@dataclass
class Mix:
    """How a batch is mixed in pairs: face i with face perm[i], blended (mixup) or with the partner's box pasted in (CutMix)."""

    lam: float  # each face's own share: its weight (mixup) or the area outside the box (CutMix)
    perm: torch.Tensor  # (B,) int64: the partner of each face
    box: tuple[int, int, int, int] | None = None  # CutMix: (top, bottom, left, right) taken from the partner; None = mixup

    def images(self, x: torch.Tensor) -> torch.Tensor:
        if self.box is None:
            return self.lam * x + (1 - self.lam) * x[self.perm]
        top, bottom, left, right = self.box
        out = x.clone()
        out[..., top:bottom, left:right] = x[self.perm][..., top:bottom, left:right]
        return out

    def features(self, f: torch.Tensor) -> torch.Tensor:
        """Per-face features (HOG) blended by the same shares: exact for mixup, an approximation for CutMix."""
        return self.lam * f + (1 - self.lam) * f[self.perm]


def cutmix_box(lam: float, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """CutMix's box: sides sqrt(1 - lam) of the face's, centred anywhere, clipped at the edges (so its
    area can come out smaller: Mix.lam is then recomputed from the box)."""
    cut = math.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    return max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)


def draw_mix(batch: int, size: tuple[int, int], generator: torch.Generator, mixup: float = 0.0, cutmix: float = 0.0,
             mixup_prob: float = 0.5) -> Mix | None:
    """This batch's Mix (None with both off): mixup or CutMix (with both on, mixup with probability
    mixup_prob), lam ~ Beta(alpha, alpha) of the one picked, partners a random permutation."""
    if not mixup and not cutmix:
        return None
    rng = numpy_rng(generator)
    use_cutmix = bool(cutmix) and (not mixup or rng.random() >= mixup_prob)
    alpha = cutmix if use_cutmix else mixup
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(batch, generator=generator)
    if not use_cutmix:
        return Mix(lam, perm)
    h, w = size
    box = cutmix_box(lam, h, w, rng)
    return Mix(1 - (box[1] - box[0]) * (box[3] - box[2]) / (h * w), perm, box)
