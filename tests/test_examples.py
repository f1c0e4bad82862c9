"""Every script of benchmarks/, examples/ and tools/ runs end to end in its --fast mode (and
writes into a temporary folder)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(
    p for folder in ("benchmarks", "benchmarks/reference", "examples", "tools") for p in (ROOT / folder).glob("*.py")
    if not p.name.startswith("_")
)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_runs_fast(script, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(script), "--fast", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "a script should print what it found"


def test_mnist_fit_times_reach_the_performance_page(tmp_path):
    """paper_mnist.py writes one CSV line per fit; bench_performance.py --mnist-fits reads
    them back into its seconds-per-fit table (no fit cache needed)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from bench_performance import mnist_lines
        from paper_mnist import write_fit_times
    finally:
        sys.path.pop(0)
    rows = [{"seed": s, "prior": "gmm", "aligner": "flow", "fit_s": t}
            for s, t in ((1, 100.0), (2, 300.0))]
    write_fit_times(tmp_path / "fits.csv", rows, (60000, 10000, 10000), 50)
    text = "\n".join(mnist_lines(fits_csv=tmp_path / "fits.csv"))
    assert "60,000 training images, 50 epochs" in text and "2 fits" in text
    assert "| gmm | flow | 2 | 200 |" in text


def test_the_user_guide_snippets_run_in_order():
    """docs/user_guide.md's Python blocks, run one after the other in one namespace as a
    reader would paste them (the first block makes the stand-in data the others use)."""
    import re
    import warnings

    text = (ROOT / "docs" / "user_guide.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, block in enumerate(blocks):
            exec(compile(block, f"user_guide.md python block {i}", "exec"), namespace)
