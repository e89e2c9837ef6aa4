"""README.md and BENCHMARKS.md stay true: README's figures are BENCHMARKS.md's, its first block is the two commands
(the second is what .ci/run runs), and every command either page shows uses flags its script accepts."""
import pathlib
import re
import shlex

import pytest
import helpers

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BENCHMARKS = (REPO / "BENCHMARKS.md").read_text()
DOCS = {f"docs/{p.name}": p.read_text() for p in sorted((REPO / "docs").glob("*.md"))}   # the README's detail pages
ABSL_SCRIPTS = ["run_ner.py", "run_re.py", "run_pretraining.py", "create_pretraining_data.py",
                "data/ChemProtTextFormatting.py", "re_eval.py", "convert.py"]
RUNS = {"biobert/re_eval.py": "re_eval.py", "biobert/convert.py": "convert.py"}   # the path runs the entry point


def code_blocks(text):
    """The fenced blocks of a markdown text, as strings."""
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)


def prose(text):
    """The text without fenced blocks and inline code (commands, versions and paths, not figures)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`]*`", "", text)


def figures(text):
    """Numbers with decimals (not version strings such as 2.21.0)."""
    return {m for m in re.findall(r"(?<![\w.])\d+\.\d+(?:\.\d+)*", text) if m.count(".") == 1}


def test_every_readme_figure_is_in_benchmarks():
    for text in (README, *DOCS.values()):
        missing = sorted(f for f in figures(prose(text))
                         if not re.search(r"(?<![\d.])" + re.escape(f) + r"(?!\d)", BENCHMARKS))
        # versions named in prose (TensorFlow 2.21, Horovod 0.28.1 has two dots) are in BENCHMARKS' machine line too
        assert missing == []


def test_every_docs_page_the_readme_names_exists():
    named = set(re.findall(r"docs/[\w-]+\.md", README))
    assert named, "README points to no docs/ page"
    assert named <= set(DOCS), sorted(named - set(DOCS))


def test_figures_finds_decimals_only():
    assert figures("F1 88.29 in 4.5 minutes, TensorFlow 2.21.0, 3 epochs, 1e-4") == {"88.29", "4.5"}


def test_benchmarks_is_a_results_page():
    assert len(BENCHMARKS.splitlines()) <= 400
    assert "Session " not in BENCHMARKS           # the dated history lives in git


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first = code_blocks(README)[0].strip().splitlines()
    assert first == ["bash scripts/demo.sh", "bash scripts/install.sh && python -m pytest -q"]
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == first[1]


def commands(text):
    """(script, [flags]) of every python/bash command in the fenced blocks of ``text``."""
    found = []
    for block in code_blocks(text):
        block = re.sub(r"\\\n", " ", block)
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#") or line.startswith("for ") or line == "done":
                continue
            line = re.sub(r"\[([^\]]*)\]", lambda m: " ".join(m.group(1).split("|")), line)   # [--a|--b]
            words = shlex.split(line.replace("$(", "(").replace("&&", ";"), posix=True)
            for i, word in enumerate(words):
                if word.endswith((".py", ".sh")) and i and re.search(r"(python|bash)$", words[i - 1]):
                    flags = [w.split("=")[0] for w in words[i + 1:] if w.startswith("--")]
                    found.append((word, flags))
    return found


@pytest.fixture(scope="module")
def absl_flags():
    """{script: set of flag names} of the absl entry points, read in one process (each script's flags alone)."""
    return {script: set(defaults) for script, defaults in helpers.flag_defaults(ABSL_SCRIPTS).items()}


def accepted(script, absl_flags):
    """Flag names ``script`` accepts (with absl's --noX and argparse's --no-X forms)."""
    script = RUNS.get(script, script)
    if script in absl_flags:
        names = absl_flags[script]
        return {"--" + n for n in names} | {"--no" + n for n in names}
    source = (REPO / script).read_text()
    names = set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", source))
    return names | {"--no-" + n[2:] for n in names}


def test_every_documented_command_uses_flags_its_script_accepts(absl_flags):
    checked = 0
    for text in (README, BENCHMARKS, *DOCS.values()):
        for script, flags_used in commands(text):
            script = script.replace("/work/wt43/", "")
            assert (REPO / script).is_file(), script
            if script.endswith(".sh"):
                continue
            unknown = sorted(set(flags_used) - accepted(script, absl_flags))
            assert unknown == [], f"{script}: {unknown}"
            checked += 1
    assert checked >= 12


def test_the_command_parser_reads_a_documented_line():
    text = "```bash\npython run_re.py --do_train --data_dir=/x \\\n  --nouse_xla [--amp|--noamp]  # note\n```\n"
    assert commands(text) == [("run_re.py", ["--do_train", "--data_dir", "--nouse_xla", "--amp", "--noamp"])]
