"""Turn the BioCreative VI ChemProt corpus into train.tsv / dev.tsv / test.tsv for run_re.py.

    python data/ChemProtTextFormatting.py --input_folder=DIR --output_folder=DIR

Input (``--input_folder``): a folder holding the corpus in any of these forms, or such a zip itself:
  * the extracted split folders (``chemprot_training/``, ``chemprot_development/``,
    ``chemprot_test_gs/``, possibly under ``ChemProt_Corpus/``);
  * the official ``ChemProt_Corpus.zip`` (it nests one zip per split:
    ``ChemProt_Corpus/chemprot_training.zip`` -> ``chemprot_training/chemprot_training_*.tsv``);
  * a zip holding the tsv files directly.
Files per split (BioCreative VI track 5):
  ``*_abstracts.tsv``  PMID, title, abstract
  ``*_entities.tsv``   PMID, T#, CHEMICAL|GENE-Y|GENE-N, start, end, mention text
  ``*_relations.tsv``  PMID, CPR:N, evaluated (Y|N), relation type, Arg1:T#, Arg2:T#
Entity offsets count characters of ``title + one separator + abstract`` (checked against the
mention text of every entity line).

Output (``--output_folder``): ``train.tsv``, ``dev.tsv``, ``test.tsv``, each with the header
``index<TAB>sentence<TAB>label`` and one row per CHEMICAL x GENE (GENE-Y or GENE-N) pair whose
two mentions lie in the same sentence and do not overlap. The two target mentions are replaced by
``@CHEMICAL$`` and ``@GENE$`` (other mentions stay as text); the index is ``PMID.T#chem.T#gene``;
the label is the CPR group (CPR:3, 4, 5, 6, 9) of an evaluated relation between the two
entities, ``false`` otherwise. A pair carrying two evaluated groups (a handful per split) gets
the first one in label order, or one row per group with ``--duplicate_multi_label`` (as BLUE did).
Rows are plain tab-separated text (no csv quoting; tabs and newlines inside text become spaces).
"""
import collections
import io
import os
import re
import sys
import zipfile

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert import cli  # noqa: E402
from biobert.errors import InputError  # noqa: E402
from biobert.fileio import atomic_open  # noqa: E402

LABELS = ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9")
ENTITY_TYPES = ("CHEMICAL", "GENE-Y", "GENE-N")
HEADER = "index\tsentence\tlabel"

# output name -> (abstracts, entities, relations) file names of the official corpus
SPLITS = collections.OrderedDict([
    ("train", ("chemprot_training_abstracts.tsv", "chemprot_training_entities.tsv",
               "chemprot_training_relations.tsv")),
    ("dev", ("chemprot_development_abstracts.tsv", "chemprot_development_entities.tsv",
             "chemprot_development_relations.tsv")),
    ("test", ("chemprot_test_abstracts_gs.tsv", "chemprot_test_entities_gs.tsv",
              "chemprot_test_relations_gs.tsv")),
])


# --------------------------------------------------------------------------------------------
# Finding the corpus files in folders and (nested) zips
# --------------------------------------------------------------------------------------------

def _usable(name):
    base = os.path.basename(name)
    return base and not base.startswith("._") and "__MACOSX" not in name.split("/")


def _index_zip(data, shown, found):
    """Add the tsv members of zip bytes/file ``data`` (and of zips nested in it) to ``found``."""
    try:
        archive = zipfile.ZipFile(data)
    except zipfile.BadZipFile as err:
        raise InputError(f"not a valid zip file ({err})", path=shown) from None
    with archive:
        for member in sorted(archive.namelist()):
            if member.endswith("/") or not _usable(member):
                continue
            where = f"{shown}!{member}"
            if member.endswith(".zip"):
                _index_zip(io.BytesIO(archive.read(member)), where, found)
            elif member.endswith(".tsv"):
                found.setdefault(os.path.basename(member), (where, archive.read(member)))


def find_corpus_files(input_path):
    """Map each tsv basename under ``input_path`` (folder or zip) to (shown path, content).

    ``content`` is a filesystem path (str) for plain files or the bytes of a zip member. Plain
    files win over zipped ones of the same name; the first found (sorted walk) wins otherwise.
    """
    input_path = os.fspath(input_path)
    found = {}
    if os.path.isfile(input_path):
        _index_zip(input_path, input_path, found)
        return found
    if not os.path.isdir(input_path):
        raise InputError("input folder not found", path=input_path)
    zips = []
    for root, dirs, files in os.walk(input_path):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if not _usable(path.replace(os.sep, "/")):
                continue
            if name.endswith(".tsv"):
                found.setdefault(name, (path, path))
            elif name.endswith(".zip"):
                zips.append(path)
    for path in zips:
        zipped = {}
        _index_zip(path, path, zipped)
        for name, value in zipped.items():
            found.setdefault(name, value)
    return found


def _read_lines(shown, content):
    """Yield (line_number, fields) of a tsv given by path or bytes; blank lines are skipped."""
    try:
        if isinstance(content, bytes):
            text = content.decode("utf-8")
        else:
            with open(content, encoding="utf-8") as handle:
                text = handle.read()
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err})", path=shown) from None
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line.split("\t")


# --------------------------------------------------------------------------------------------
# Reading one split
# --------------------------------------------------------------------------------------------

Entity = collections.namedtuple("Entity", "id type start end text")


def read_abstracts(shown, content):
    """PMID -> (title, abstract). Malformed or duplicate lines raise InputError (file:line)."""
    docs = collections.OrderedDict()
    for number, fields in _read_lines(shown, content):
        if len(fields) != 3:
            raise InputError(f"expected 3 tab-separated columns (PMID, title, abstract), "
                             f"found {len(fields)}", path=shown, line=number)
        pmid = fields[0].strip()
        if not pmid:
            raise InputError("empty PMID", path=shown, line=number)
        if pmid in docs:
            raise InputError(f"PMID {pmid} listed twice", path=shown, line=number)
        docs[pmid] = (fields[1], fields[2])
    if not docs:
        raise InputError("no abstracts", path=shown)
    return docs


def document_text(title, abstract):
    """The text entity offsets refer to: title, one separator character, abstract."""
    return title + " " + abstract


def read_entities(shown, content, docs):
    """PMID -> {T#: Entity}; every mention must match the document text at its offsets."""
    entities = collections.defaultdict(dict)
    for number, fields in _read_lines(shown, content):
        if len(fields) != 6:
            raise InputError(f"expected 6 tab-separated columns (PMID, T#, type, start, end, "
                             f"text), found {len(fields)}", path=shown, line=number)
        pmid, tid, etype, start, end, mention = fields
        if pmid not in docs:
            raise InputError(f"PMID {pmid} is not in the abstracts file", path=shown, line=number)
        if etype not in ENTITY_TYPES:
            raise InputError(f"unknown entity type {etype!r} (expected one of "
                             f"{', '.join(ENTITY_TYPES)})", path=shown, line=number)
        try:
            start, end = int(start), int(end)
        except ValueError:
            raise InputError(f"offsets must be integers, got {fields[3]!r} and {fields[4]!r}",
                             path=shown, line=number) from None
        text = document_text(*docs[pmid])
        if not 0 <= start < end <= len(text):
            raise InputError(f"offsets {start}-{end} outside the text of PMID {pmid}",
                             path=shown, line=number)
        if text[start:end] != mention:
            raise InputError(f"mention {mention!r} does not match the abstract text "
                             f"{text[start:end]!r} at {start}-{end}", path=shown, line=number)
        if tid in entities[pmid]:
            raise InputError(f"entity {pmid} {tid} listed twice", path=shown, line=number)
        entities[pmid][tid] = Entity(tid, etype, start, end, mention)
    return entities


def read_relations(shown, content, entities):
    """(PMID, chemical T#, gene T#) -> set of evaluated CPR groups among LABELS."""
    relations = collections.defaultdict(set)
    for number, fields in _read_lines(shown, content):
        if len(fields) != 6:
            raise InputError(f"expected 6 tab-separated columns (PMID, CPR group, evaluated, "
                             f"type, Arg1, Arg2), found {len(fields)}", path=shown, line=number)
        pmid, group, evaluated, _, arg1, arg2 = (f.strip() for f in fields)
        if not re.fullmatch(r"CPR:\d+", group):
            raise InputError(f"bad CPR group {group!r}", path=shown, line=number)
        if evaluated not in ("Y", "N"):
            raise InputError(f"evaluated flag must be Y or N, got {evaluated!r}",
                             path=shown, line=number)
        ids = []
        for arg, prefix in ((arg1, "Arg1:"), (arg2, "Arg2:")):
            if not arg.startswith(prefix):
                raise InputError(f"expected {prefix}T#, got {arg!r}", path=shown, line=number)
            tid = arg[len(prefix):]
            if tid not in entities.get(pmid, {}):
                raise InputError(f"unknown entity {pmid} {tid}", path=shown, line=number)
            ids.append(entities[pmid][tid])
        chem = [e for e in ids if e.type == "CHEMICAL"]
        gene = [e for e in ids if e.type != "CHEMICAL"]
        if len(chem) != 1 or len(gene) != 1:
            raise InputError("a relation must join one CHEMICAL and one GENE entity",
                             path=shown, line=number)
        if evaluated == "Y" and group in LABELS:
            relations[(pmid, chem[0].id, gene[0].id)].add(group)
    return relations


# --------------------------------------------------------------------------------------------
# Sentence splitting
# --------------------------------------------------------------------------------------------

# Tokens (lower-cased, without the final period) after which a period does not end a sentence.
ABBREVIATIONS = frozenset("""
    e.g i.e c.f cf vs v viz approx ca al fig figs no nos ref refs eq eqs resp sp spp subsp var cv
    dr prof mr mrs ms st inc co ltd corp expt exp u.s u.k
    j biol chem biochem pharmacol pharm phys am soc anal biomed lett org natl acad sci proc adv
""".split())
# Routes and dosing ("given i.v. Infusion of ..." ends; "by i.v. CCK-8", "i.v. 10 min" do not).
ROUTES = frozenset("i.v i.p s.c p.o i.c.v i.m i.t i.g b.w b.i.d t.i.d q.d".split())
_GREEK = re.compile(r"^(?:[α-ωΑ-Ω]|alpha|beta|gamma|delta|kappa|epsilon|omega|mu|zeta|theta)-")
_OPENERS = "([{\"'“‘<"
_CLOSERS = ")]}\"'”’"
_INITIAL = re.compile(r"^(?:[A-Z]\.)+,?$")


def _previous_token(text, pos):
    """The whitespace-delimited token ending right before ``pos`` (opening brackets stripped)."""
    start = pos
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:pos].lstrip(_OPENERS), start


def _period_ends_sentence(text, dot, nxt):
    """Whether the period at ``dot`` (followed by whitespace, then the token ``nxt``) ends one."""
    prev, prev_start = _previous_token(text, dot)
    if prev.lower() in ABBREVIATIONS:
        return False
    if prev.lower() in ROUTES:
        return bool(re.match(r"[A-Z][a-z]", nxt))
    if re.fullmatch(r"[A-Z]", prev):
        # a lone capital: an initial in a name list ("Kanoh, H. (1996)", "J. A. Smith") ...
        before, _ = _previous_token(text, prev_start - 1) if prev_start > 0 else ("", 0)
        if before.endswith(",") or _INITIAL.match(before) or _INITIAL.match(nxt) \
                or nxt[0] in _OPENERS or nxt[0].islower():
            return False
        return True  # ... or a sentence end ("vitamin C. The", "complex I. It")
    first = nxt.lstrip(_OPENERS)
    if nxt[0] in _OPENERS or not first:
        return True
    if first[0].isupper() or first[0].isdigit():
        return True
    # lower-case start: chemical/gene names like "mRNA", "cAMP", "siRNA", "β-ionone"
    word = first.split()[0] if first.split() else first
    return bool(re.search(r"[A-Z0-9]", word) or _GREEK.match(word))


def _candidate_boundaries(text):
    """Yield (end, next_start) of possible sentence ends: [.?!] (+ closers) then a new sentence."""
    for match in re.finditer(r"[.?!][" + re.escape(_CLOSERS) + r"]*(\s+)(?=(\S+))", text):
        mark, end, nxt = match.start(), match.start(1), match.group(2)
        if text[mark] == ".":
            ends = _period_ends_sentence(text, mark, nxt)
        else:
            first = nxt.lstrip(_OPENERS) or nxt
            ends = not first[0].islower() or bool(re.search(r"[A-Z0-9]", first))
        if ends:
            yield end, match.end(1)
    # run-together headings and sentences: "...p < 0.05).CONCLUSIONS ...", "disease.The ..."
    for match in re.finditer(r"(?:[a-z]{3}|\)|\d)[.?!](?=[A-Z][a-z]{2}|[A-Z]{4})", text):
        yield match.end(), match.end()


def split_sentences(text, protected=()):
    """Split ``text`` into sentences; returns a list of (start, end) character spans.

    ``protected``: (start, end) spans (entity mentions) no boundary may fall inside. Splits
    after ., ? or ! followed by a likely sentence start; never inside a decimal number (a period
    followed by a digit without a space), after a known abbreviation (e.g., i.e., vs., approx.,
    Fig., et al., ...) or after initials in author lists. Spans exclude surrounding whitespace.
    """
    cuts = set()
    for end, next_start in _candidate_boundaries(text):
        if any(s < next_start and e > end - 1 for s, e in protected):
            continue  # a mention contains the final mark or spans the gap
        cuts.add((end, next_start))
    spans, start = [], 0
    for end, next_start in sorted(cuts):
        if re.fullmatch(r"\s*\(?(?:\d{1,3}|[ivxIVX]{1,4}|[a-zA-Z])[.)]\s*", text[start:end]):
            continue  # an enumerator ("1.", "(ii).") starts the next sentence, not one of its own
        if end > start:
            spans.append((start, end))
        start = max(start, next_start)
    spans.append((start, len(text)))
    result = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            result.append((s, e))
    return result


def document_sentences(title, abstract, entities=()):
    """Sentence spans over document_text(title, abstract): the title is always its own sentence."""
    offset = len(title) + 1
    protected = [(e.start - offset, e.end - offset) for e in entities if e.start >= offset]
    spans = split_sentences(title, [(e.start, e.end) for e in entities if e.end <= len(title)])
    spans += [(s + offset, e + offset) for s, e in split_sentences(abstract, protected)]
    return spans


# --------------------------------------------------------------------------------------------
# Pairs and rows
# --------------------------------------------------------------------------------------------

def _clean(text):
    return re.sub(r"[\t\r\n]", " ", text)


def mask_sentence(text, span, chem, gene):
    """The sentence ``span`` of ``text`` with the chemical and gene mentions replaced by masks."""
    start, end = span
    pieces = sorted([(chem.start, chem.end, "@CHEMICAL$"), (gene.start, gene.end, "@GENE$")])
    out, pos = [], start
    for s, e, mask in pieces:
        out.append(text[pos:s])
        out.append(mask)
        pos = e
    out.append(text[pos:end])
    return _clean("".join(out))


def format_split(docs, entities, relations, duplicate_multi_label=False):
    """Rows and statistics of one split.

    Returns (rows, stats): rows are (index, sentence, label) tuples in document order;
    stats is a Counter with keys ``written``, ``overlapping``, ``cross_sentence``,
    ``multi_label_dropped`` (extra gold groups of a pair not written) and one key per label.
    """
    rows, stats = [], collections.Counter()
    for pmid, (title, abstract) in docs.items():
        text = document_text(title, abstract)
        ents = sorted(entities.get(pmid, {}).values(),
                      key=lambda e: (e.start, e.end, int(re.sub(r"\D", "", e.id) or 0)))
        sentences = document_sentences(title, abstract, ents)

        def sentence_of(entity):
            for index, (s, e) in enumerate(sentences):
                if s <= entity.start and entity.end <= e:
                    return index
            return None

        where = {e.id: sentence_of(e) for e in ents}
        chemicals = [e for e in ents if e.type == "CHEMICAL"]
        genes = [e for e in ents if e.type != "CHEMICAL"]
        for chem in chemicals:
            for gene in genes:
                groups = sorted(relations.get((pmid, chem.id, gene.id), ()))
                if chem.start < gene.end and gene.start < chem.end:
                    stats["overlapping"] += 1
                    stats["overlapping_positive"] += len(groups)
                    continue
                if where[chem.id] is None or where[chem.id] != where[gene.id]:
                    stats["cross_sentence"] += 1
                    stats["cross_sentence_positive"] += len(groups)
                    continue
                sentence = mask_sentence(text, sentences[where[chem.id]], chem, gene)
                labels = groups or ["false"]
                if not duplicate_multi_label:
                    stats["multi_label_dropped"] += len(labels) - 1
                    labels = labels[:1]
                for label in labels:
                    rows.append((f"{pmid}.{chem.id}.{gene.id}", sentence, label))
                    stats["written"] += 1
                    stats[label] += 1
    return rows, stats


def write_rows(path, rows):
    """Write the header and rows as tab-separated lines, atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(HEADER + "\n")
        for row in rows:
            handle.write("\t".join(row) + "\n")


def load_split(found, names):
    """Read (docs, entities, relations) of one split from the find_corpus_files() map."""
    missing = [name for name in names if name not in found]
    if missing:
        raise InputError(f"corpus file(s) not found: {', '.join(missing)}")
    (a_shown, a), (e_shown, e), (r_shown, r) = (found[name] for name in names)
    docs = read_abstracts(a_shown, a)
    entities = read_entities(e_shown, e, docs)
    relations = read_relations(r_shown, r, entities)
    return docs, entities, relations


def format_corpus(input_path, output_folder, splits=tuple(SPLITS), duplicate_multi_label=False,
                  log=print):
    """Format the given splits of the corpus at ``input_path`` into ``output_folder``.

    All splits are read and checked before any file is written. Returns {split: stats}.
    """
    found = find_corpus_files(input_path)
    results = {}
    for split in splits:
        try:
            names = SPLITS[split]
        except KeyError:
            raise InputError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        try:
            docs, entities, relations = load_split(found, names)
        except InputError as err:
            if err.path is None:
                raise InputError(f"{err} (split {split}, under {input_path})") from None
            raise
        results[split] = format_split(docs, entities, relations, duplicate_multi_label)
    os.makedirs(output_folder, exist_ok=True)
    summary = {}
    for split, (rows, stats) in results.items():
        path = os.path.join(output_folder, f"{split}.tsv")
        write_rows(path, rows)
        summary[split] = stats
        classes = ", ".join(f"{label} {stats[label]}" for label in LABELS + ("false",))
        log(f"{split}: wrote {stats['written']} pairs to {path} ({classes})")
        log(f"{split}: rejected {stats['overlapping'] + stats['cross_sentence']} pairs "
            f"(overlapping mentions {stats['overlapping']}, in different sentences "
            f"{stats['cross_sentence']}); gold relations lost: overlapping "
            f"{stats['overlapping_positive']}, cross-sentence {stats['cross_sentence_positive']}"
            f", second label of a multi-label pair {stats['multi_label_dropped']}")
    return summary


FLAGS = flags.FLAGS
flags.DEFINE_string("input_folder", None, "Folder holding the ChemProt corpus: extracted split "
                    "folders, ChemProt_Corpus.zip (nested per-split zips), or a zip of the tsv "
                    "files; a path to such a zip also works.")
flags.DEFINE_string("output_folder", None, "Folder to write train.tsv, dev.tsv and test.tsv to.")
flags.DEFINE_list("splits", list(SPLITS), "Which splits to write (train, dev, test).")
flags.DEFINE_boolean("duplicate_multi_label", False, "Write one row per gold CPR group for a "
                     "pair with several evaluated groups (BLUE's choice) instead of one row with "
                     "the first group in label order.")


def main(argv):
    del argv
    if not FLAGS.input_folder or not FLAGS.output_folder:
        print("error: --input_folder and --output_folder are required", file=sys.stderr)
        return 1
    try:
        format_corpus(FLAGS.input_folder, FLAGS.output_folder, FLAGS.splits,
                      FLAGS.duplicate_multi_label)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    cli.run(main)
