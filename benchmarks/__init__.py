"""Side-by-side speed measurements of xsteer's engine (run with ``python -m benchmarks``)."""
