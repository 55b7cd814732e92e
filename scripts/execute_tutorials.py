"""Re-execute the tutorial notebooks (``tutorials/*.ipynb``) in place, so that their committed outputs are current.

The notebooks themselves are the source: edit their cells in Jupyter, then run
``python scripts/execute_tutorials.py`` (``--only scrcl`` for one). Each notebook runs from a fresh
kernel in ``tutorials/``, as nbmake runs it in the tests; cell ids are kept, so a diff shows only
what changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NAMES = ("bgformer", "scrcl")


def main() -> None:
    """Execute the notebooks and write them back with their new outputs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=NAMES, help="execute one notebook")
    args = parser.parse_args()
    for name in NAMES:
        if args.only not in (None, name):
            continue
        path = TUTORIALS / f"{name}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        NotebookClient(
            notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
        ).execute()
        nbformat.write(notebook, path)
        print("executed", path)


if __name__ == "__main__":
    main()
