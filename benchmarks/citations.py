"""Are the figures of a results page in the JSON files it cites?

The convention is written at the top of ``benchmarks/RESULTS.md``. In short:

* A section is a heading and the text up to the next heading. It cites JSON
  by linking it (``[live](results/live.json)``); a link to a folder under the
  results folder cites every JSON in it and below. A ``###`` section also
  cites what its enclosing ``##`` section links.
* Every number left in a section must be a number of one of those files
  (found anywhere in them, nested values included) rounded to the digits
  shown: ``23.8`` matches 23.77, ``4`` matches 3.6, ``3.0e-5`` matches
  3.04e-5. A range ``12-19`` is two numbers; ``40 %`` also matches 0.40.
* Not figures, so not checked: code spans, link targets, HTML comments,
  numbers joined to a name (``p95``, ``lia-256``, ``640x480``, ``2-core``),
  versions (``3.11.7``), commit hashes, thresholds (a number after ``<=``,
  ``>=``, ``<`` or ``>``), an ordered list's item numbers and a table's header
  row. Anything else that is no measurement is listed in its section as
  ``<!-- not-measured: 30 fps; RTX 3090 -->`` (phrases, each exempt wherever it
  stands in the section); ``<!-- not-measured -->`` alone on a line exempts the
  lines after it up to the next blank line (an estimate, a goal).
* Every cited JSON records its ``command`` (its words before the first option
  are named in the section), the ``machine``, the package ``versions`` and the
  1-minute ``load``, or a "Provenance gaps" section of the page lists it as
  ``- versions not recorded: [name](results/name.json)``.

`check_page` applies all of it to a results page; `check_references` checks
the blocks of another page (the README) that link to a section of it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

PROVENANCE = ("command", "machine", "versions", "load")
"""What every cited JSON records, by the names "Provenance gaps" uses."""
GAPS_TITLE = "Provenance gaps"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_RULE = re.compile(r"^\s*\|[\s:|-]*-{3,}[\s:|-]*$")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_MARKER = re.compile(r"<!--\s*not-measured\s*(?::(.*?))?-->", re.DOTALL)
_BLOCK_MARKER = re.compile(r"^\s*<!--\s*not-measured\s*-->\s*$")
_GAP_ITEM = re.compile(r"^\s*[-*]\s+(.*?)\s+not recorded:(.*)$")
_NUMBER = re.compile(
    r"(?<![\w.])(?<![A-Za-z_]-)(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
)
_NOT_FIGURES = (
    re.compile(r"<!--.*?-->", re.DOTALL),  # comments, the markers among them
    re.compile(r"`[^`]*`"),  # code spans: commands, paths, keys
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"\d+(?:\.\d+){2,}[\w+.-]*"),  # versions: 3.11.7, 2.13.0+cpu
    re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"),  # commit hashes
    re.compile(r"(?<!-)(?:<=|>=|<|>|≤|≥)\s*[+-]?\d[\d,.]*(?:[eE][-+]?\d+)?"),  # thresholds
    re.compile(r"^\s*\d+\.\s", re.MULTILINE),  # ordered list items
)


@dataclass(frozen=True, slots=True)
class Section:
    """A heading and its text; ``level`` 0 is the text before the first heading."""

    level: int
    title: str
    start: int  # 1-based line number of the heading (of the page's first line for level 0)
    lines: tuple[str, ...]  # the heading line and the body

    @property
    def anchor(self) -> str:
        return anchor(self.title)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True, slots=True)
class Figure:
    """A number as shown: its value and the unit of its last digit."""

    shown: str
    value: float
    ulp: float
    percent: bool
    line: int

    def matches(self, value: float) -> bool:
        tolerance = self.ulp / 2 * (1 + 1e-9) + 1e-12
        if abs(value - self.value) <= tolerance:
            return True
        return self.percent and abs(100 * value - self.value) <= tolerance


@dataclass(frozen=True)
class Page:
    """A markdown page and the folder its cited JSON must sit in."""

    path: Path
    results: Path

    @functools.cached_property
    def sections(self) -> list[Section]:
        return split_sections(self.path.read_text())

    def chain(self, index: int) -> list[Section]:
        """Section ``index`` and, for a ``###`` one and deeper, its enclosing sections."""
        return [self.sections[index], *_enclosing(self.sections, index)]

    def cited(self, index: int) -> list[Path]:
        """The JSON files section ``index`` cites (its own links and its parents')."""
        targets = [t for s in self.chain(index) for t in links(s.text)]
        return _unique(p for t in targets for p in json_files(self.resolve(t), self.results))

    def resolve(self, target: str) -> Path:
        return (self.path.parent / target.split("#", 1)[0]).resolve()

    def find(self, anchor_name: str) -> int | None:
        found = [i for i, s in enumerate(self.sections) if s.anchor == anchor_name]
        return found[0] if found else None


def links(text: str) -> list[str]:
    """The targets of the markdown links in ``text``, leaving out those in code spans."""
    return _LINK.findall(re.sub(r"`[^`]*`", "", text))


def anchor(title: str) -> str:
    """The fragment a heading gets on GitHub: lower case, punctuation gone, '-' for spaces."""
    plain = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return plain.replace(" ", "-")


def split_sections(text: str) -> list[Section]:
    """The page's sections in order, the text before the first heading first."""
    sections: list[Section] = []
    lines: list[str] = []
    level, title, start = 0, "", 1
    in_code = False
    for number, line in enumerate(text.splitlines(), start=1):
        in_code ^= bool(_FENCE.match(line))
        heading = None if in_code else _HEADING.match(line)
        if heading:
            sections.append(Section(level, title, start, tuple(lines)))
            level, title, start, lines = len(heading.group(1)), heading.group(2), number, []
        lines.append(line)
    sections.append(Section(level, title, start, tuple(lines)))
    return sections


def _enclosing(sections: list[Section], index: int) -> list[Section]:
    found: list[Section] = []
    level = sections[index].level
    for section in reversed(sections[:index]):
        if 2 <= section.level < level:
            found.append(section)
            level = section.level
    return found


def _unique(paths: Iterable[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


def json_files(path: Path, results: Path) -> list[Path]:
    """What a link to ``path`` cites: the JSON file, or those in the folder; only in ``results``."""
    if not path.is_relative_to(results.resolve()):
        return []
    if path.is_dir():
        return sorted(path.rglob("*.json"))
    return [path] if path.suffix == ".json" and path.is_file() else []


@functools.lru_cache(maxsize=512)
def json_numbers(path: Path) -> tuple[float, ...]:
    """Every number in the JSON file, at any depth (booleans are not numbers)."""
    return tuple(_leaves(json.loads(path.read_text())))


def _leaves(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield float(value)


# --- the text that is checked ----------------------------------------------


def checked_blocks(section: Section) -> list[tuple[int, str]]:
    """``(first line, text)`` of each paragraph and each table row the section checks.

    Fenced code, a table's header and rule, and the lines a block marker exempts
    are left out.
    """
    blocks: list[tuple[int, str]] = []
    previous = 0  # the last line a paragraph may go on from (0: none)
    for number, line in _kept_lines(section):
        row = line.lstrip().startswith("|")
        if blocks and not row and previous == number - 1:
            start, text = blocks[-1]
            blocks[-1] = (start, text + "\n" + line)
        else:
            blocks.append((number, line))
        previous = 0 if row else number
    return blocks


def _kept_lines(section: Section) -> Iterator[tuple[int, str]]:
    lines = section.lines
    skipping = in_code = False
    for offset, line in enumerate(lines):
        fence = bool(_FENCE.match(line))
        in_code ^= fence
        skipping = (skipping and bool(line.strip())) or bool(_BLOCK_MARKER.match(line))
        header = offset + 1 < len(lines) and bool(_TABLE_RULE.match(lines[offset + 1]))
        dropped = skipping or in_code or fence or header or _TABLE_RULE.match(line)
        if line.strip() and not dropped:
            yield section.start + offset, line


def phrases(chain: Iterable[Section]) -> list[str]:
    """The ``<!-- not-measured: a; b -->`` phrases of a section and its enclosing ones."""
    text = "\n".join(section.text for section in chain)
    found = [m.group(1) for m in _MARKER.finditer(text) if m.group(1)]
    return [p.strip() for listed in found for p in listed.split(";") if p.strip()]


def _blank(match: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def clean(text: str, exempt: Iterable[str] = ()) -> str:
    """``text`` with every non-figure blanked out (same length, same lines)."""
    for phrase in exempt:
        words = r"\s+".join(re.escape(word) for word in phrase.split())
        text = re.sub(rf"(?<![\w.]){words}(?![\w])", _blank, text)
    for pattern in _NOT_FIGURES:
        text = pattern.sub(_blank, text)
    return text


def figures(text: str, first_line: int = 1, exempt: Iterable[str] = ()) -> list[Figure]:
    """The numbers of ``text`` that are figures, by the rules above."""
    plain = clean(text, exempt)
    found = []
    for match in _NUMBER.finditer(plain):
        if not _joined_to_a_name(plain, match.end()):
            line = first_line + plain.count("\n", 0, match.start())
            found.append(_figure(plain, match, line))
    return found


def _joined_to_a_name(text: str, end: int) -> bool:
    after, then = text[end : end + 1], text[end + 1 : end + 2]
    if after == "x":  # 0.74x is a ratio; 640x480 is a size
        return then.isalnum() or then == "_"
    if after == "-":  # 2-core, 1-minute
        return then.isalpha()
    return after.isalnum() or after == "_"


def _figure(text: str, match: re.Match[str], line: int) -> Figure:
    digits = match.group(0).replace(",", "")
    sign = _sign(text, match.start())
    number = Decimal(sign + digits)
    ulp = float(Decimal(1).scaleb(number.as_tuple().exponent))  # type: ignore[arg-type]
    percent = text[match.end() :].lstrip(" ").startswith("%")
    return Figure(sign + match.group(0), float(number), ulp, percent, line)


def _sign(text: str, start: int) -> str:
    """``-`` or ``+`` written before a number (not the hyphen of a range such as 12-19)."""
    if start == 0 or text[start - 1] not in "+-−":
        return ""
    before = text[start - 2] if start >= 2 else " "
    if before.isalnum() or before in "._)":
        return ""
    return "+" if text[start - 1] == "+" else "-"


# --- the checks ----------------------------------------------------------------


def check_page(page: Page) -> list[str]:
    """Every unbacked figure, broken link and unrecorded provenance of ``page``; [] if none."""
    problems = _broken_links(page)
    gaps = declared_gaps(page)
    for index, section in enumerate(page.sections):
        found = _section_figures(page, index)
        problems += _unbacked(page, section, found, page.cited(index))
        if found:
            problems += _provenance(page, index, gaps)
    return problems


def check_references(page: Page, results_page: Page) -> list[str]:
    """The figures of ``page``'s blocks that link to a section of ``results_page``.

    Each such block's numbers must be in the JSON that section cites.
    """
    problems: list[str] = []
    for index, section in enumerate(page.sections):
        for line, text in checked_blocks(section):
            problems += _reference(page, results_page, index, line, text)
    return problems


def _reference(page: Page, results: Page, index: int, line: int, text: str) -> list[str]:
    linked, problems = _linked_sections(page, results, text, line)
    if not linked:
        return problems
    cited = _unique(p for i in linked for p in results.cited(i))
    found = figures(text, line, phrases(page.chain(index)))
    return problems + _unbacked(page, page.sections[index], found, cited)


def _linked_sections(
    page: Page, results: Page, text: str, line: int
) -> tuple[list[int], list[str]]:
    indices, problems = [], []
    for target in links(text):
        if page.resolve(target) != results.path.resolve():
            continue
        name = target.partition("#")[2]
        index = results.find(name)
        if not name:
            continue  # the page as a whole: no figure is tied to it
        if index is None:
            problems.append(f"{page.path.name}:{line}: {target}: no such section")
        else:
            indices.append(index)
    return indices, problems


def _section_figures(page: Page, index: int) -> list[Figure]:
    exempt = phrases(page.chain(index))
    blocks = checked_blocks(page.sections[index])
    return [f for line, text in blocks for f in figures(text, line, exempt)]


def _unbacked(page: Page, section: Section, found: list[Figure], cited: list[Path]) -> list[str]:
    values = [v for path in cited for v in json_numbers(path)]
    where = f"{page.path.name}:{{}} ({section.title or 'top'})"
    names = _names(page, cited)
    return [
        f"{where.format(f.line)}: {f.shown} is in none of: {names}"
        for f in found
        if not any(f.matches(v) for v in values)
    ]


def _names(page: Page, cited: list[Path]) -> str:
    if not cited:
        return "no JSON cited"
    more = f" and {len(cited) - 2} more" if len(cited) > 3 else ""
    return ", ".join(_short(page, p) for p in cited[: 2 if more else 3]) + more


def _short(page: Page, path: Path) -> str:
    return str(path.relative_to(page.results.resolve().parent))


def _broken_links(page: Page) -> list[str]:
    results = page.results.resolve()
    problems = []
    for section in page.sections:
        for target in links(section.text):
            path = page.resolve(target)
            if path.is_relative_to(results) and not path.exists():
                problems.append(f"{page.path.name} ({section.title}): {target} does not exist")
    return problems


def missing_provenance(record: Any) -> set[str]:
    """Which of `PROVENANCE` a JSON record lacks."""
    if not isinstance(record, dict):
        return set(PROVENANCE)
    machine = record.get("machine")
    machine = machine if isinstance(machine, dict) else {}
    missing = set()
    if not isinstance(record.get("command"), str) or not record["command"].strip():
        missing.add("command")
    if "cpu_model" not in machine:
        missing.add("machine")
    if not isinstance(machine.get("versions"), dict):
        missing.add("versions")
    if "loadavg_1m" not in machine:
        missing.add("load")
    return missing


def declared_gaps(page: Page) -> dict[Path, set[str]]:
    """What the page's "Provenance gaps" section says each JSON lacks."""
    gaps: dict[Path, set[str]] = {}
    for section in page.sections:
        if section.title.strip("* ").startswith(GAPS_TITLE):
            for item in list_items(section):
                _add_gaps(page, item, gaps)
    return gaps


def list_items(section: Section) -> list[str]:
    """The section's list items, each with its wrapped lines joined."""
    items: list[str] = []
    for line in section.lines[1:]:
        if re.match(r"^\s*[-*]\s", line):
            items.append(line.strip())
        elif items and line.strip():
            items[-1] += " " + line.strip()
    return items


def _add_gaps(page: Page, line: str, gaps: dict[Path, set[str]]) -> None:
    item = _GAP_ITEM.match(line)
    if item is None:
        return
    fields = {f for f in PROVENANCE if re.search(rf"\b{f}\b", item.group(1))}
    for target in links(item.group(2)):
        for path in json_files(page.resolve(target), page.results):
            gaps.setdefault(path, set()).update(fields)


def _provenance(page: Page, index: int, gaps: dict[Path, set[str]]) -> list[str]:
    problems: list[str] = []
    commands: dict[str, Path] = {}
    for path in page.cited(index):
        record = json.loads(path.read_text())
        lacking = missing_provenance(record) - gaps.get(path, set())
        if lacking:
            problems.append(
                f"{_short(page, path)}: no {', '.join(sorted(lacking))} recorded,"
                f" and no '{GAPS_TITLE}' item says so"
            )
        if "command" not in missing_provenance(record):
            commands.setdefault(command_words(record["command"]), path)
    return problems + _unnamed(page, index, commands)


def command_words(command: str) -> str:
    """The words of a command before its first option: ``vicocam bench live``."""
    words = []
    for word in command.split():
        if word.startswith("-"):
            break
        words.append(word)
    return " ".join(words)


def _unnamed(page: Page, index: int, commands: dict[str, Path]) -> list[str]:
    """A problem for each command (words before its options) the section never names."""
    text = re.sub(r"\s+", " ", "\n".join(s.text for s in page.chain(index)))
    title = page.sections[index].title
    return [
        f"{page.path.name} ({title}): cites {_short(page, path)} but never names `{words}`"
        for words, path in commands.items()
        if words not in text
    ]


def main() -> int:
    """``python -m benchmarks.citations``: list RESULTS.md's and the README's unbacked figures."""
    root = Path(__file__).resolve().parent
    results_page = Page(root / "RESULTS.md", root / "results")
    readme = Page(root.parent / "README.md", root / "results")
    problems = check_page(results_page) + check_references(readme, results_page)
    print("\n".join(problems) or "every figure is backed")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
