"""What a data set holds and what is wrong with it.

Every reader records the problems it meets as :class:`Problem` objects (file,
line, message) in a :class:`Report` instead of raising or dropping data
silently. A sample with a problem is left out of the data set and counted, so a
training run starts, says how many samples it skipped and why, and
``rtdet data check`` exits non-zero listing each one. A *warning* is a label that
is kept but probably wrong (e.g. a box one pixel wide): listed the same way,
without failing the check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One fault in a data set: where it is and what is wrong."""

    file: str
    message: str
    line: int | None = None  # 1-based line in a text/XML file; None when not line-based

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclass
class Report:
    """Counts and problems of one split of a data set."""

    name: str = ""
    images: int = 0  # images kept (readable, with valid labels)
    boxes: int = 0
    empty_images: int = 0  # kept images without any box (background images)
    per_class: Counter = field(default_factory=Counter)  # class index -> boxes
    problems: list[Problem] = field(default_factory=list)
    skipped_images: int = 0  # images left out because of a problem
    warnings: list[Problem] = field(default_factory=list)  # kept, but worth a look

    def add(self, file: str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(str(file), message, line))

    def warn(self, file: str, message: str, line: int | None = None) -> None:
        """Record a label that is kept but probably wrong."""
        self.warnings.append(Problem(str(file), message, line))

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line for a training log: kept, skipped, problems."""
        s = f"{self.name}: {self.images} images, {self.boxes} boxes, {self.empty_images} without boxes"
        if self.problems:
            s += f"; skipped {self.skipped_images} bad images ({len(self.problems)} problems, run `rtdet data check`)"
        return s

    per_class_unit = "boxes"  # what ``per_class`` counts
    per_class_score = "AP"  # the per-class number a rare class keeps low

    def notes(self, names: list[str], few: int = 10) -> list[str]:
        """What in this split can keep a model from learning: nothing to learn from, samples skipped for
        problems, classes without or with fewer than ``few`` samples. One sentence each; ``[]`` when none."""
        unit, out = self.per_class_unit, []
        if sum(self.per_class.values()) == 0:
            out.append(f"{self.name} has no usable {unit}" + (f" ({len(self.problems)} problems were skipped: "
                                                               f"`rtdet data check` lists them)" if self.problems
                                                              else ""))
            return out
        if self.problems:
            out.append(f"{len(self.problems)} problems in {self.name} were skipped (`rtdet data check` lists them)")
        if self.warnings:
            out.append(f"{len(self.warnings)} suspicious labels in {self.name} were kept (`rtdet data check` lists "
                       f"them)")
        missing = [n for c, n in enumerate(names) if self.per_class.get(c, 0) == 0]
        if missing:
            out.append(f"class(es) without any training {unit}: {', '.join(missing)} (they cannot be learned)")
        rare = [f"{n} ({self.per_class[c]})" for c, n in enumerate(names) if 0 < self.per_class.get(c, 0) < few]
        if rare:
            out.append(f"class(es) with fewer than {few} training {unit}: {', '.join(rare)} (expect a low {self.per_class_score} for them)")
        return out

    def totals(self) -> str:
        """The counts line of :meth:`format`."""
        return (f"images: {self.images}  boxes: {self.boxes}  empty images: {self.empty_images}  "
                f"skipped images: {self.skipped_images}")

    def class_lines(self, names: list[str] | None = None) -> list[str]:
        """The counts-per-class lines of :meth:`format` (none when nothing was counted)."""
        if not self.per_class:
            return []
        lines = [f"  {self.per_class_unit} per class:"]
        n = max(len(names), max(self.per_class) + 1) if names else max(self.per_class) + 1
        for c in range(n):
            label = names[c] if names and c < len(names) else str(c)
            lines.append(f"    {c:>4} {label:<20} {self.per_class.get(c, 0)}")
        return lines

    def format(self, names: list[str] | None = None, max_problems: int = 0) -> str:
        """Multi-line text report: totals, counts per class, every problem (all when ``max_problems`` is 0)."""
        lines = [f"[{self.name}]", f"  {self.totals()}", *self.class_lines(names)]
        shown = self.problems if max_problems <= 0 else self.problems[:max_problems]
        lines.append(f"  problems: {len(self.problems)}")
        lines += [f"    {p}" for p in shown]
        if len(shown) < len(self.problems):
            lines.append(f"    ... and {len(self.problems) - len(shown)} more")
        if self.warnings:
            warned = self.warnings if max_problems <= 0 else self.warnings[:max_problems]
            lines.append(f"  warnings (kept): {len(self.warnings)}")
            lines += [f"    {p}" for p in warned]
            if len(warned) < len(self.warnings):
                lines.append(f"    ... and {len(self.warnings) - len(warned)} more")
        return "\n".join(lines)
