"""vramfit benchmarks: each bench_<part>.py measures one part and writes bench/results/<part>.json."""
