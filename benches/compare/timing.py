"""What the comparison scripts share: the median of timed runs."""

import statistics
import time


def timed(fn, runs):
    """Median wall time of `runs` calls of `fn`, in seconds."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
