"""ferkit: facial expression recognition on FER2013 and on photos.

    import ferkit
    predictor = ferkit.Predictor()                 # the bundled model
    predictor.predict("photo.jpg")                 # [{"box", "label", "score", "probs"}, ...]

Heavy modules (torch, OpenCV) load on first use, so `import ferkit` stays fast.
"""

from .labels import EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "Predictor", "__version__", "create_model", "list_models", "load_image", "load_model"]

_LAZY = {"load_model": "predict", "Predictor": "predict", "create_model": "model", "list_models": "model",
         "load_image": "faces"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
