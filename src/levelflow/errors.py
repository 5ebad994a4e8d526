"""Located problems: every error a user sees names its file, place and JSON path."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

JsonPath = tuple  # a JSON path: keys (str) and indices (int), e.g. ("definition", 0, "THREADS")


def format_path(path: Sequence) -> str:
    """('definition', 1, 'THREADS', 0) -> 'definition[1].THREADS[0]'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


@dataclass(frozen=True)
class Problem:
    file: str
    message: str
    path: JsonPath = ()
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.path:
            return f"{where}: {format_path(self.path)}: {self.message}"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": format_path(self.path) if self.path else None,
            "message": self.message,
        }


class LevelflowError(Exception):
    """Invalid input: carries every problem found, already located."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class LevelflowWarning(UserWarning):
    """A definition that validates but may fail or misbehave once deployed (`--strict`: an error)."""
