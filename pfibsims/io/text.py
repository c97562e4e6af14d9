"""Text matrices: CSV/TXT maps with optional header lines (AZtec exports, Hiden SIMS exports).

A file is header lines followed by one or more numeric blocks. A header line
``key: value``, ``key = value`` or ``key,value`` becomes an entry of the
header dict (keys lower-cased and stripped); other non-numeric lines (column
titles, comments starting with ``#``) are skipped. Numeric rows are split on
commas, semicolons, tabs or spaces; an empty last field (a trailing comma, as
AZtec writes) is ignored, but when every row ends with one, a last row
without it marks a truncated file. Blocks separated by blank or non-numeric lines are
frames: a file with several blocks of one shape is a (frame, y, x) stack.
Values are float64 (text carries no dtype).
"""

from __future__ import annotations

import re
from array import array
from pathlib import Path

import numpy as np

from ..errors import FileFormatError

__all__ = ["read_text_matrix"]

_SPLIT = re.compile(r"[,;\t ]+")
_KEY = re.compile(r"^\s*#?\s*([A-Za-z][\w .()/%-]*?)\s*[:=,\t]\s*(.*?)\s*,*$")


def _numbers(line: str) -> list[float] | None:
    fields = [f for f in _SPLIT.split(line.strip()) if f != ""]
    if not fields:
        return None
    try:
        return [float(f) for f in fields]
    except ValueError:
        return None


def read_text_matrix(path: Path) -> tuple[dict[str, str], np.ndarray]:
    """Header dict and data (2-D, or 3-D for several blocks) of a text matrix file.

    Raises
    ------
    FileFormatError
        When no numeric block is found, or rows or blocks differ in length
        (a truncated file), naming the path and the line.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> _ = open(p, "w").write("Mass: 6\\n1,2,3,\\n4,5,6,\\n")
    >>> read_text_matrix(Path(p))
    ({'mass': '6'}, array([[1., 2., 3.],
           [4., 5., 6.]]))
    """
    header: dict[str, str] = {}
    blocks: list[np.ndarray] = []
    starts: list[int] = []
    current = _Block(0)
    try:
        # line by line into flat float arrays (8 bytes a value): lists of floats took ~85 bytes per byte of a
        # one-column file (a 10 MB file, 850 MB)
        with open(path, encoding="utf-8", errors="strict") as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.rstrip("\r\n")
                row = _numbers(line)
                if row is None:
                    if current.rows:
                        blocks.append(current.close(path))
                        current = _Block(0)
                    m = _KEY.match(line)
                    if m and m[2]:
                        header.setdefault(m[1].strip().lower(), m[2].strip().strip('"'))
                    continue
                if not current.rows:
                    current = _Block(lineno)
                    starts.append(lineno)
                current.add(row, line, lineno, path)
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: expected a text matrix (UTF-8 text), found binary data") from None
    if current.rows:
        blocks.append(current.close(path, last=True))
    if not blocks:
        raise FileFormatError(f"{path}: expected a numeric matrix (rows of numbers), found none")
    shapes = [b.shape for b in blocks]
    if len(set(shapes)) > 1:
        raise FileFormatError(
            f"{path}: expected blocks of one shape, found {shapes} (blocks start on lines {starts}); the file may be truncated"
        )
    data = blocks[0] if len(blocks) == 1 else np.stack(blocks)
    return header, data


class _Block:
    """One numeric block being read: its values in a flat float64 array, checked row by row."""

    def __init__(self, start: int) -> None:
        self.values = array("d")
        self.rows = 0
        self.cols = 0
        self.trailing_before_last = True  # every row but the last ends with a separator
        self.last_trailing = False
        self.last_line = start

    def add(self, row: list[float], line: str, lineno: int, path: Path) -> None:
        if self.rows and len(row) != self.cols:
            raise FileFormatError(
                f"{path}: expected {self.cols} values per row (as the block's first row), "
                f"found {len(row)} on line {lineno}; the file may be truncated"
            )
        if self.rows:
            self.trailing_before_last &= self.last_trailing
        self.cols = len(row)
        self.values.extend(row)
        self.rows += 1
        self.last_trailing = line.rstrip("\r\n ")[-1:] in (",", ";", "\t")
        self.last_line = lineno

    def close(self, path: Path, *, last: bool = False) -> np.ndarray:
        """The block as a (rows, cols) array; the file's last block must not lose a trailing separator."""
        if last and self.rows > 1 and self.trailing_before_last and not self.last_trailing:
            raise FileFormatError(
                f"{path}: expected every row to end with a separator as the others do, found line {self.last_line} "
                "without one; the file is truncated"
            )
        return np.frombuffer(self.values, dtype=np.float64).reshape(self.rows, self.cols)
