"""ONNX export of a Classifier: a self-contained graph from uint8 faces to probabilities.

    faces uint8 (N, 48, 48) -> [cast, - mean image, / 128] -> CNN -> softmax [-> average with
    the mirrored face when the model was trained with tta] -> probs float32 (N, 7)

Preprocessing, softmax and test-time augmentation live inside the graph, so an .onnx file needs
nothing but onnxruntime and gives the same numbers as `Classifier.predict_proba`. The batch axis
is dynamic. HOG hybrids are refused: their HOG features come from scikit-image, outside the graph.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import Classifier
from .errors import FerkitError
from .preprocess import PIXEL_SCALE, probabilities

INPUT, OUTPUT = "faces", "probs"


class FacesToProbs(nn.Module):
    """uint8 faces (N, 48, 48) -> probabilities (N, 7), exactly as Classifier.predict_proba."""

    def __init__(self, clf: Classifier, tta: bool | None = None):
        super().__init__()
        if clf.model.hog_dim:
            raise FerkitError("HOG hybrid models cannot be exported to ONNX (their HOG features are computed by "
                              "scikit-image outside the network); export a CNN-only model such as vgg, shallow or deep")
        self.model = clf.model
        self.tta = clf.tta if tta is None else bool(tta)
        self.register_buffer("mean", torch.from_numpy(np.asarray(clf.mean, np.float32)))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = (faces.float().unsqueeze(1) - self.mean) / PIXEL_SCALE  # (N, 1, 48, 48), as preprocess.to_tensor
        return probabilities(self.model, x, tta=self.tta)


def export_onnx(clf: Classifier, out: str | Path | io.BytesIO, tta: bool | None = None, opset: int = 17) -> None:
    """Write the ONNX graph of `clf` to a path (or a BytesIO)."""
    size = clf.spec.in_size
    wrapper = FacesToProbs(clf, tta).cpu().eval()
    dummy = torch.zeros(2, size, size, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # dynamo=False: the TorchScript-based exporter needs no extra package (onnxscript)
        torch.onnx.export(wrapper, (dummy,), out, dynamo=False, opset_version=opset,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    clf.model.to(clf.device)


def onnx_session(model: str | Path | bytes, threads: int | None = None):
    """An onnxruntime session (CPU, full graph optimisation) from an .onnx path or its bytes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    src = model if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes) and not Path(model).exists():
        raise FerkitError(f"{model}: no such ONNX file; write one with 'ferkit export CHECKPOINT --onnx OUT.onnx'")
    try:
        return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise FerkitError(f"{model if not isinstance(model, bytes) else 'the ONNX graph'}: not a usable ONNX model ({e})") from None


def session_from_classifier(clf: Classifier, threads: int | None = None, tta: bool | None = None):
    """Export `clf` in memory and open it with onnxruntime."""
    buf = io.BytesIO()
    export_onnx(clf, buf, tta)
    return onnx_session(buf.getvalue(), threads)
