"""Precision and device names, one place for every flag, setting and check that takes one (no torch
here: the CLI's parser, the config, the server's settings and the light install import it without torch).

    torch backend: fp32, or bf16 autocast (preprocess.autocast); auto = bf16 where the device runs it fast
    onnx backend:  fp32, or int8 (onnxruntime static quantization, onnx_export); auto = fp32, or as exported
"""

from __future__ import annotations

TORCH = ("auto", "fp32", "bf16")
ONNX = ("auto", "fp32", "int8")
ANY = TORCH + tuple(p for p in ONNX if p not in TORCH)  # a flag or setting that serves either backend

# --device: what a torch device may be called (checkpoint.device_of checks the machine has it)
DEVICE = r"auto|cpu|mps|cuda(:\d+)?"
DEVICE_TEXT = "auto, cpu, cuda, cuda:N or mps"
