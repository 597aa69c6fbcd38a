"""Example applications shipped with the console: used by the demo, the tests and the benchmarks."""
