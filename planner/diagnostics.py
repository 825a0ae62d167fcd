"""Input problems collected and reported together, each naming what is wrong and where.

The planner reads many files and objects; a person fixing them wants every problem in one run,
not one per run. Parsers append ``Problem`` values and the CLI prints them all at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input: ``where`` (file, object, field) and what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class InputError(Exception):
    """Input that cannot be planned; carries every problem found, in the order found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in problems))


class FieldError(ValueError):
    """One bad value: the message names ``where``, and ``detail`` says what is wrong without it
    (for a reader that records ``Problem(where, detail)`` itself)."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail
