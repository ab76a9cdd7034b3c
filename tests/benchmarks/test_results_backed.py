"""Every figure of ``benchmarks/RESULTS.md`` (and of the README lines that link
to it) is in a JSON file the section cites, written by the command it names.

The convention is at the top of ``benchmarks/RESULTS.md``; the checker is
`benchmarks.citations`. The tests below the first two run it on made-up pages,
so that it is seen to fail where it should.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.citations import Page, check_page, check_references, figures

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Page(ROOT / "benchmarks" / "RESULTS.md", ROOT / "benchmarks" / "results")
README = Page(ROOT / "README.md", ROOT / "benchmarks" / "results")

COMMAND = "vicocam bench demo --json results/a.json"
MACHINE = {"cpu_model": "AMD EPYC", "loadavg_1m": 1.2, "versions": {"vicocam": "0.1.0"}}


def test_every_figure_in_results_md_is_in_the_json_its_section_cites():
    assert check_page(RESULTS) == []


def test_the_readme_figures_that_link_to_results_md_are_in_that_sections_json():
    assert check_references(README, RESULTS) == []


def write_page(tmp_path: Path, text: str, **files: dict) -> Page:
    """A results page and its JSON files (``files``: name -> figures, provenance added)."""
    results = tmp_path / "results"
    for name, figures_ in files.items():
        path = results / f"{name.replace('__', '/')}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {**figures_, "command": COMMAND, "machine": MACHINE}
        path.write_text(json.dumps(record))
    (tmp_path / "RESULTS.md").write_text(text)
    return Page(tmp_path / "RESULTS.md", results)


SECTION = "## Demo\n\n`vicocam bench demo`: [a](results/a.json).\n\n"


def shown(text: str, exempt: tuple[str, ...] = ()) -> list[str]:
    return [f.shown for f in figures(text, exempt=exempt)]


def test_a_figure_that_is_not_in_the_json_fails(tmp_path):
    page = write_page(tmp_path, SECTION + "It ran at 29.9 fps, p95 31.8 ms.\n",
                      a={"fps": 29.94, "latency_p95_ms": 31.2})  # fmt: skip
    problems = check_page(page)
    assert len(problems) == 1
    assert "RESULTS.md:5 (Demo): 31.8 is in none of: results/a.json" in problems[0]


@pytest.mark.parametrize(
    ("text", "value", "backed"),
    [
        ("30 fps", 29.94, True),  # shown to no decimals
        ("29.9 fps", 29.94, True),
        ("29.94 fps", 29.9, False),  # more digits than the JSON holds
        ("1,200 frames", 1200, True),
        ("3.0e-5", 3.04e-5, True),
        ("3.1e-5", 3.04e-5, False),
        ("40 %", 0.4, True),  # a percentage stored as a fraction
        ("98.7 %", 98.66, True),
        ("-1.79 ms", -1.794, True),
        ("-1.79 ms", 1.794, False),  # the sign counts
        ("+0.94 ms", 0.937, True),
        ("0.74x", 0.736, True),
    ],
)
def test_a_figure_matches_to_the_digits_shown(tmp_path, text, value, backed):
    page = write_page(tmp_path, SECTION + f"Measured: {text}.\n", a={"figure": value})
    assert (check_page(page) == []) is backed


def test_a_range_needs_both_ends(tmp_path):
    figures_ = {"cpu_ms": [12.1, 15.0, 18.7]}
    assert check_page(write_page(tmp_path, SECTION + "CPU 12-19 ms.\n", a=figures_)) == []
    problems = check_page(write_page(tmp_path, SECTION + "CPU 12-21 ms.\n", a=figures_))
    assert [p.split(": ")[1] for p in problems] == ["21 is in none of"]


def test_nested_values_and_folder_links_count(tmp_path):
    text = "## Runs\n\n`vicocam bench demo` in [runs](results/runs/).\n\np50 4.3 and 7.25 ms.\n"
    page = write_page(tmp_path, text, runs__one={"stages": {"track": {"p50": 4.31}}},
                      runs__two={"conditions": [{"p50": 7.249}]})  # fmt: skip
    assert check_page(page) == []


def test_a_subsection_cites_what_its_section_links(tmp_path):
    text = SECTION + "### Detail\n\nGenerate took 5.2 ms.\n\n## Other\n\nIt took 5.2 ms.\n"
    problems = check_page(write_page(tmp_path, text, a={"generate_ms": 5.15}))
    assert len(problems) == 1 and "(Other): 5.2 is in none of: no JSON cited" in problems[0]


def test_what_is_not_a_measurement_is_not_read_as_a_figure():
    text = (
        "`--seconds 10` p95 lia-256 640x480 2-core x86_64 Python 3.11.7 torch 2.13.0+cpu\n"
        "commit 08755bf, target <= 120 ms, >= 0.95, H.264 and VP8, "
        "[x](results/run1.json)\n"
        "1. first item <!-- 99 -->\n"
        "p50 275 -> 167 ms\n"
    )
    assert shown(text) == ["275", "167"]


def test_a_table_header_is_not_read_but_its_rows_are():
    text = "| run | fps (>= 29) | p50 ms |\n|---|---|---|\n| 1 | 30.0 | 18.1 |\n"
    page_figures = figures(text)
    assert [f.shown for f in page_figures] == ["1", "30.0", "18.1"]
    assert [f.line for f in page_figures] == [3, 3, 3]


def test_phrases_and_the_block_marker_exempt_what_is_no_measurement(tmp_path):
    text = SECTION + (
        "<!-- not-measured: RTX 3090; 35.6 TFLOPS -->\n"
        "An RTX 3090 peaks at 35.6 TFLOPS; we measured 4.3 ms.\n\n"
        "<!-- not-measured -->\n"
        "An estimate: 5.7-11.5 ms a frame,\n"
        "about 2-5 sessions.\n\n"
        "And 6.1 ms.\n"
    )
    problems = check_page(write_page(tmp_path, text, a={"track_ms": 4.34}))
    assert len(problems) == 1 and ": 6.1 is in none of" in problems[0]


def test_each_cited_json_records_its_provenance_or_a_gap_item_says_what_it_lacks(tmp_path):
    page = write_page(tmp_path, SECTION + "It ran at 29.9 fps.\n", a={"fps": 29.94})
    record = json.loads((tmp_path / "results" / "a.json").read_text())
    del record["machine"]["versions"]
    (tmp_path / "results" / "a.json").write_text(json.dumps(record))
    assert check_page(page) == [
        "results/a.json: no versions recorded, and no 'Provenance gaps' item says so"
    ]
    gaps = "\n## Provenance gaps\n\n- versions not recorded:\n  [a](results/a.json).\n"
    (tmp_path / "RESULTS.md").write_text(SECTION + "It ran at 29.9 fps.\n" + gaps)
    assert check_page(Page(page.path, page.results)) == []


def test_the_section_names_the_command_that_wrote_its_json(tmp_path):
    text = "## Demo\n\n[a](results/a.json): 29.9 fps.\n"
    problems = check_page(write_page(tmp_path, text, a={"fps": 29.94}))
    assert problems == [
        "RESULTS.md (Demo): cites results/a.json but never names `vicocam bench demo`"
    ]


def test_a_link_into_results_that_does_not_exist_fails(tmp_path):
    page = write_page(tmp_path, SECTION + "See [b](results/b.json).\n", a={})
    assert check_page(page) == ["RESULTS.md (Demo): results/b.json does not exist"]


def test_a_readme_line_linking_a_section_is_checked_against_its_json(tmp_path):
    results = write_page(tmp_path, SECTION, a={"fps": 29.94, "latency_p95_ms": 22.7})
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Tool\n\nIt runs at 30 fps (p95 23 ms, [figures](RESULTS.md#demo)).\n\n"
        "| what | where |\n|---|---|\n| live (p95 21 ms, [figures](RESULTS.md#demo)) | VM |\n"
        "| other (see [figures](RESULTS.md#nowhere)) | 2 cores |\n\n"
        "Not linked, not checked: 640 MB, 12 cores.\n"
    )
    problems = check_references(Page(readme, results.results), results)
    assert len(problems) == 2
    assert "README.md:7 (Tool): 21 is in none of: results/a.json" in problems[0]
    assert problems[1] == "README.md:8: RESULTS.md#nowhere: no such section"


def test_a_link_written_in_a_code_span_cites_nothing(tmp_path):
    text = "## Demo\n\n`vicocam bench demo`, `[a](results/a.json)`: 29.9 fps.\n"
    problems = check_page(write_page(tmp_path, text, a={"fps": 29.94}))
    assert problems == ["RESULTS.md:3 (Demo): 29.9 is in none of: no JSON cited"]
