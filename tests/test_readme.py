"""The README's Python examples run as written (a new user's first copy-paste)."""

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    import matplotlib.pyplot as plt

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace = {}
    for block in blocks:  # later blocks reuse names from earlier ones, as a reader would
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["h"].shape == (100, 8, 32)
    assert set(namespace["grads"]) == set(namespace["cell"].params)
    assert len(namespace["comparison"]) == 3
    # what the comments next to the examples promise
    assert isinstance(namespace["fig"], matplotlib.figure.Figure)
    assert "no slope" in namespace["comparison"].takeaway()
    peephole = namespace["regime"][0].loglog_slopes()["W_ic"]["term"]
    assert peephole.quotable and 0.8 < peephole.slope < 1.0
    assert "‖c‖^0.9" in namespace["regime"].takeaway()
    plt.close("all")
