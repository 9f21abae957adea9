"""What the benchmark scripts share: the peer's figures and the timer."""

import statistics
import time

# The most used offline peer, `fer` (mini-Xception), measured on this project's 2-core CPU: face
# crops/s at batch 128, ms for one face, ms from skimage's astronaut photo to its emotions.
PEER = {"crops/s": 2180.0, "ms/face": 0.45, "ms/photo": 39.0}


def median_s(fn, repeat: int) -> float:
    """Median seconds of fn() over `repeat` calls, after two warm-up calls (first calls allocate
    and pick kernels)."""
    fn()
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
