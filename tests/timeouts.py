"""Test helper: fail a test instead of hanging the suite."""

import signal
from contextlib import contextmanager


@contextmanager
def time_limit(seconds: int = 60):
    """Fail the test (instead of hanging the suite) if the block runs longer than ``seconds``."""

    def handler(signum, frame):
        raise TimeoutError(f"did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
