"""Every entry point's --help lists every flag the program defines or adopts (grouped, with defaults), exit 0."""
import re
import subprocess
import sys

import pytest
from helpers import REPO

ENTRY_POINTS = ("run_ner.py", "run_re.py", "run_pretraining.py", "create_pretraining_data.py",
                "data/ChemProtTextFormatting.py", "re_eval.py", "convert.py")
FLAG_LINE = re.compile(r"^  --(?:\[no\])?([A-Za-z0-9_]+)")


def sections(text):
    """{heading: [flag names]} of an absl help text (headings are unindented lines ending in ':')."""
    out, heading = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            heading = line[:-1]
            out.setdefault(heading, [])
        elif heading and FLAG_LINE.match(line):
            out[heading].append(FLAG_LINE.match(line).group(1))
    return out


@pytest.fixture(scope="module")
def helps():
    """(--help output, --helpfull output) of every entry point, run side by side."""
    procs = {(script, kind): subprocess.Popen([sys.executable, script, kind], cwd=REPO, text=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for script in ENTRY_POINTS for kind in ("--help", "--helpfull")}
    out = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[key] = (proc.returncode, stdout, stderr)
    return out


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_help_lists_every_flag_of_the_program(helps, script):
    code, short, err = helps[(script, "--help")]
    assert code == 0, err
    full_code, full, err = helps[(script, "--helpfull")]
    # --helpfull groups the flags by the module defining them: the script itself and biobert's modules are
    # the program's; absl's, TensorFlow's and the help flags are not.
    ours = set()
    for heading, names in sections(full).items():
        if heading == script or heading.startswith("biobert"):
            ours.update(names)
    assert len(ours) >= 3
    listed = [name for names in sections(short).values() for name in names]
    assert sorted(set(listed)) == sorted(ours), "--help must list exactly the program's flags"
    assert len(listed) == len(set(listed)), "a flag listed twice"
    assert "flags:" in short and "Try --helpfull" in short


def test_help_shows_defaults_in_groups(helps):
    _, text, _ = helps[("run_ner.py", "--help")]
    groups = sections(text)
    assert "max_seq_length" in groups["Task and data"] and "train_batch_size" in groups["Training"]
    assert "amp" in groups["Precision, XLA and distribution"]
    block = text[text.index("--max_seq_length"):]
    assert "(default: '128')" in block[:block.index("\n  --")]
    _, text, _ = helps[("run_re.py", "--help")]
    block = text[text.index("--[no]do_lower_case"):]
    assert "(default: 'true')" in block[:block.index("\n  --")]


@pytest.mark.parametrize("name", ["re_eval.py", "convert.py"])
def test_the_package_path_runs_the_entry_point(helps, name):
    """`python biobert/re_eval.py` (the original recipe's command) and `python biobert/convert.py` are the entry
    points at the root: the same --help."""
    proc = subprocess.run([sys.executable, f"biobert/{name}", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert (proc.returncode, proc.stdout) == helps[(name, "--help")][:2]
