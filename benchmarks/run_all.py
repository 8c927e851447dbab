"""Run every benchmark in turn (each prints a markdown table and writes benchmarks/out/*.md)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_exact.py", "bench_model.py", "bench_graph.py", "bench_projection.py",
           "bench_fairness.py", "bench_refill.py", "bench_search.py", "bench_dual.py", "bench_extremes.py",
           "bench_certificates.py",
           "bench_serve.py"]

if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__).parse_args()  # --help, and no stray arguments
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
