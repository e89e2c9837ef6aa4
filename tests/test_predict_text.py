"""Raw-text NER (run_ner.py --do_predict --predict_file) on real PubMed abstracts, with a tiny model fine-tuned
once on a BC5CDR slice: offsets into the original text, sentences and windows, Unicode, JSON lines, errors."""
import json
import os
import unicodedata

import pytest
from helpers import REPO, run_python

from biobert import rawtext, tokenization
from biobert.segmentation import NLTKSegmenter


def run_ner(args, check=True):
    return run_python([os.path.join(REPO, "run_ner.py")] + [str(a) for a in args], check=check)


@pytest.fixture(scope="module")
def model(ner_slice, tmp_path_factory):
    """A fine-tuned output folder (tiny BERT, cased vocabulary, 6 epochs of the BC5CDR-chem slice)."""
    out = tmp_path_factory.mktemp("ner_model")
    run_ner(["--do_train", f"--data_dir={ner_slice['data']}", f"--bert_config_file={ner_slice['config']}",
             f"--vocab_file={ner_slice['vocab']}", f"--output_dir={out}", f"--dllog_path={out / 'dllog.json'}",
             "--train_batch_size=16", "--learning_rate=3e-3", "--num_train_epochs=6", "--iterations_per_loop=50",
             "--noamp", "--nouse_xla"])
    for name in ("label_map.json", "bert_config.json", "vocab.txt", "model_info.json", "checkpoint"):
        assert (out / name).is_file(), name
    info = json.loads((out / "model_info.json").read_text())
    assert info["do_lower_case"] is False and info["entity_type"] == "Chemical"
    return out


def predict(model, lines, tmp_path, name, *extra, raw=None, line_end="\n"):
    """Write ``lines`` (or bytes ``raw``) as a predict file, tag it with only the model folder; the records."""
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text("".join(line + line_end for line in lines), encoding="utf-8", newline="")
    out = tmp_path / (name + ".out")
    run_ner(["--do_predict", f"--predict_file={path}", f"--init_checkpoint={model}", f"--output_dir={out}",
             f"--dllog_path={out / 'dllog.json'}", "--noamp", "--nouse_xla"] + list(extra))
    return [json.loads(line) for line in open(out / "predictions.jsonl", encoding="utf-8")]


@pytest.fixture(scope="module")
def abstracts(shared_data):
    lines = (shared_data / "pubmed" / "PubMedAbstract_1MB.txt").read_text(encoding="utf-8").split("\n")
    return [line for line in lines if line.strip()]


def joined(a, b):
    """True when characters ``a`` and ``b`` side by side belong to one word (no word boundary between them):
    letters and digits, or a combining mark after either; never a CJK ideograph."""
    def wordish(c):
        return c.isalnum() or unicodedata.category(c).startswith("M")
    cjk = any(tokenization.is_cjk_char(ord(c)) for c in (a, b))
    return not cjk and wordish(a) and (b.isalnum() or unicodedata.category(b).startswith("M"))


def check_entities(record, tokenizer):
    """Each entity lies on word boundaries of its text (neither end cuts a word; a trailing combining mark stays
    inside), is sorted and apart from the others, and its text tokenizes to a run of the
    text's own pieces; its "text" is its span of the original."""
    text = record["text"]
    pieces = tokenizer.tokenize(text)
    previous_end = -1
    for e in record["entities"]:
        start, end = e["start"], e["end"]
        assert 0 <= start < end <= len(text) and e["text"] == text[start:end]
        assert e["text"] == e["text"].strip()
        assert start == 0 or not joined(text[start - 1], text[start]), (text[max(start - 5, 0):end], e)
        assert end == len(text) or not joined(text[end - 1], text[end]), (text[start:end + 5], e)
        own = tokenizer.tokenize(e["text"])
        assert own and any(pieces[k:k + len(own)] == own for k in range(len(pieces) - len(own) + 1)), e
        assert start >= previous_end                         # sorted, never overlapping or duplicated
        previous_end = end
        assert e["type"] == "Chemical" and 0.0 < e["score"] <= 1.0


def test_plain_text_offsets_slice_the_abstracts(model, abstracts, tmp_path):
    docs = abstracts[:40] + [""] + abstracts[40:50]
    records = predict(model, docs, tmp_path, "docs.txt", line_end="\r\n")     # a CRLF file: no \r in the texts
    tokenizer = tokenization.FullTokenizer(model / "vocab.txt", do_lower_case=False)
    assert [r["id"] for r in records] == list(range(1, 52))
    assert [r["text"] for r in records] == docs
    assert records[40]["entities"] == []
    for record in records:
        check_entities(record, tokenizer)
    found = [e["text"] for r in records for e in r["entities"]]
    assert len(found) >= 20, "the fine-tuned model should find chemicals in 50 abstracts"


def test_long_document_in_sentences_and_windows(model, abstracts, tmp_path):
    """max_seq_length 32: a document of >3x32 pieces is split into sentences (as its sentences tagged one by one),
    and one sentence of >3x32 pieces into overlapping windows whose merged entities are those of each window
    tagged alone, inside the part of the window that decides its words."""
    tokenizer = tokenization.FullTokenizer(model / "vocab.txt", do_lower_case=False)
    segmenter = NLTKSegmenter()
    sentences = [s for a in abstracts[:60] for s in segmenter.segment_string(a)]
    sentences = [s for s in sentences if 8 <= len(tokenizer.tokenize(s)) <= 28 and "." not in s[:-1]][:120]
    # Sentences in which the model finds something, so that the comparisons below compare entities.
    tagged = predict(model, sentences, tmp_path, "candidates.txt", "--max_seq_length=32")
    sentences = [r["text"] for r in tagged if r["entities"]]
    document, count = [], 0
    while count <= 3 * 32:
        document.append(sentences[len(document)])
        count += len(tokenizer.tokenize(document[-1]))
    doc = " ".join(document)
    assert [doc[a:b] for a, b in segmenter.spans(doc)] == document
    # One long sentence: the same sentences joined by semicolons (no sentence end inside).
    long_sentence = "; ".join(s[:-1] if s.endswith(".") else s for s in document) + "."
    assert len(segmenter.spans(long_sentence)) == 1
    words = rawtext.words_with_offsets(long_sentence, tokenizer)
    spans = rawtext.windows([len(w.pieces) for w in words], 30, 15)
    assert len(spans) >= 5
    window_texts = [long_sentence[words[a].start:words[b - 1].end] for a, b in spans]
    lines = [doc] + document + [long_sentence] + window_texts
    records = predict(model, lines, tmp_path, "long.txt", "--max_seq_length=32")
    for record in records:
        check_entities(record, tokenizer)
    # Sentences: the document's entities are those of its sentences tagged alone, shifted by their offsets.
    expected, offset = [], 0
    for sentence, record in zip(document, records[1:1 + len(document)]):
        start = doc.index(sentence, offset)
        expected += [dict(e, start=e["start"] + start, end=e["end"] + start) for e in record["entities"]]
        offset = start + len(sentence)
    assert len(expected) >= 3
    assert [(e["start"], e["end"], e["text"]) for e in records[0]["entities"]] == \
        [(e["start"], e["end"], e["text"]) for e in expected]
    assert [e["score"] for e in records[0]["entities"]] == pytest.approx([e["score"] for e in expected], abs=1e-4)
    # Windows: every entity a window finds inside the words it decides is in the merged output, unchanged;
    # every merged entity is one of those or spans a boundary between two windows' parts.
    merged = records[1 + len(document)]["entities"]
    owned = rawtext.owners(spans)
    boundaries = [words[lo].start for lo, _ in owned[1:]]
    from_windows = []
    for (a, b), (lo, hi), record in zip(spans, owned, records[2 + len(document):]):
        shift = words[a].start
        first, last = words[lo].start, words[hi - 1].end
        for e in record["entities"]:
            start, end = e["start"] + shift, e["end"] + shift
            # an entity touching the edge of the decided part may continue into the neighbour's part
            if first < start and end < last and start not in boundaries:
                from_windows.append((start, end, e["text"], e["score"]))
    merged_keys = {(e["start"], e["end"]): e for e in merged}
    for start, end, text, score in from_windows:
        assert (start, end) in merged_keys, f"entity {text!r} at {start} lost in the merge"
        assert merged_keys[(start, end)]["score"] == pytest.approx(score, abs=1e-4)
    inner = {(s, e) for s, e, _, _ in from_windows}
    for e in merged:
        crosses = any(e["start"] <= b < e["end"] or e["start"] == b for b in boundaries)
        near_edge = any(abs(e["start"] - b) < 2 or abs(e["end"] - b) < 2 for b in boundaries)
        assert (e["start"], e["end"]) in inner or crosses or near_edge, e
    assert len(merged) >= 3


def test_predicting_uses_the_sequence_length_the_model_was_trained_with(model, abstracts, tmp_path):
    """Without --max_seq_length, predicting from a fine-tuned folder windows the sentences to the length in its
    model_info.json (here edited to 32), not to the flag's default (128)."""
    import shutil

    from biobert import ner

    short = tmp_path / "model_32"
    shutil.copytree(model, short)
    info = json.loads((short / "model_info.json").read_text())
    (short / "model_info.json").write_text(json.dumps(dict(info, max_seq_length=32)))
    path = tmp_path / "abstracts.txt"
    path.write_text("".join(line + "\n" for line in abstracts[:3]), encoding="utf-8")
    documents = rawtext.read_documents(str(path))
    tokenizer = tokenization.FullTokenizer(model / "vocab.txt", do_lower_case=False)
    label_map = ner.LabelMap.from_json(str(model / "label_map.json"))
    windows = {n: len(rawtext.NerTagger(tokenizer, label_map, n, NLTKSegmenter()).features(documents)[0])
               for n in (32, 128)}
    assert windows[32] > windows[128]
    proc = run_ner(["--do_predict", f"--predict_file={path}", f"--init_checkpoint={short}",
                    f"--output_dir={tmp_path / 'out'}", "--noamp", "--nouse_xla"])
    assert f" {windows[32]} windows," in proc.stdout, proc.stdout


def test_unicode_offsets_and_json_lines_keep_ids_and_order(model, abstracts, tmp_path):
    """NBSP for spaces, CRLF, a zero-width space and a control character, Greek and accented letters: the cased
    model sees the same pieces, so it finds the same entities, whose offsets slice the changed text."""
    base = [a for a in abstracts[:40] if a.isascii()][:6]
    variants = []
    for text in base:
        v = text.replace(" ", "\u00a0", 40).replace(" ", "\r\n", 3).replace(", ", ",\u200b ", 2)
        v = v.replace(" the ", " the\x07 ", 2)
        variants.append(v)
    greek = "Effects of α-tocopherol and β-carotene on café-au-lait spots treated with naïve 5-fluorouracil."
    rows = [{"id": "b-1", "text": base[0]}, {"text": variants[0], "id": 17}, {"id": None, "text": greek}]
    rows += [{"id": f"v{k}", "text": v} for k, v in enumerate(variants[1:])]
    rows += [{"id": f"a{k}", "text": t} for k, t in enumerate(base[1:])]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows[:2]] + [""] + \
        [json.dumps(r, ensure_ascii=False) for r in rows[2:]]
    records = predict(model, lines, tmp_path, "docs.jsonl")
    tokenizer = tokenization.FullTokenizer(model / "vocab.txt", do_lower_case=False)
    assert [r["id"] for r in records] == ["b-1", 17, 3, None] + [f"v{k}" for k in range(5)] + \
        [f"a{k}" for k in range(5)]
    assert records[2] == {"id": 3, "text": "", "entities": []}
    assert [r["text"] for r in records] == [r["text"] for r in rows[:2]] + [""] + [r["text"] for r in rows[2:]]
    for record in records:
        check_entities(record, tokenizer)
    pairs = [(records[0], records[1])] + list(zip(records[9:], records[4:9]))
    total = 0
    for plain, changed in pairs:
        assert len(plain["entities"]) == len(changed["entities"])
        for p, c in zip(plain["entities"], changed["entities"]):
            undone = c["text"].replace("\u00a0", " ").replace("\r\n", " ").replace("\u200b", "").replace("\x07", "")
            assert undone == p["text"] and c["type"] == p["type"]
            assert c["score"] == pytest.approx(p["score"], abs=1e-4)
            total += 1
    assert total >= 5


def test_offsets_through_the_uncased_normalisation(uncased_vocab, cased_vocab, shared_data):
    """words_with_offsets gives FullTokenizer's pieces on every PubMed line and BC5CDR test sentence, and each
    word's span of the original text normalises to the word (accents stripped, lower-cased, controls dropped)."""
    lines = (shared_data / "pubmed" / "PubMedAbstract_1MB.txt").read_text(encoding="utf-8").split("\n")[:150]
    blocks = (shared_data / "BC5CDR" / "chem" / "test.tsv").read_text(encoding="utf-8").split("\n\n")[:400]
    sentences = [" ".join(row.split("\t")[0] for row in block.splitlines() if row) for block in blocks]
    tricky = ["Café ΑΒΓ αβγ-δ naïve\u00a0x\r\ny \x00z\u200bq e\u0301t ΟΔΟΣ İstanbul \u2028 中文 ﬁne Ⅻ ß "
              "(±)-1,2\u00ad-x"]
    for vocab, lower in ((uncased_vocab, True), (cased_vocab, False)):
        tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=lower)
        for text in lines + sentences + tricky:
            words = rawtext.words_with_offsets(text, tokenizer)
            assert [p for w in words for p in w.pieces] == tokenizer.tokenize(text)
            for w in words:
                piece = "".join(c for c in text[w.start:w.end] if not unicodedata.category(c).startswith("C"))
                if lower:
                    piece = tokenization.strip_accents(piece.lower())
                assert piece == w.text, (text[w.start:w.end], w.text)
    tokenizer = tokenization.FullTokenizer(uncased_vocab, do_lower_case=True)
    words = {w.text: tricky[0][w.start:w.end] for w in rawtext.words_with_offsets(tricky[0], tokenizer)}
    assert words["cafe"] == "Café" and words["naive"] == "naïve" and words["et"] == "e\u0301t"
    assert words["αβγ"] == "αβγ" and words["istanbul"] == "İstanbul"


def test_bad_input_is_one_error_line_and_keeps_earlier_output(model, tmp_path):
    out = tmp_path / "bad.txt.out"
    out.mkdir()
    (out / "predictions.jsonl").write_text("earlier\n")
    path = tmp_path / "bad.txt"
    path.write_bytes("Aspirin and ibuprofen.\n".encode() + b"caf\xe9 latte\n")
    proc = run_ner(["--do_predict", f"--predict_file={path}", f"--init_checkpoint={model}", f"--output_dir={out}",
                    f"--dllog_path={out / 'dllog.json'}"], check=False)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {path}:2: not UTF-8 text (byte 4 of the line: invalid continuation byte)"]
    assert (out / "predictions.jsonl").read_text() == "earlier\n"
    path.write_text('{"id": 1, "text": "fine"}\n{"id": 2, "txt": "no text"}\n', encoding="utf-8")
    proc = run_ner(["--do_predict", f"--predict_file={path}", f"--init_checkpoint={model}", f"--output_dir={out}",
                    f"--dllog_path={out / 'dllog.json'}"], check=False)
    assert proc.returncode == 1 and f'error: {path}:2: expected a JSON object with a string "text"' in proc.stderr


LOAD_AND_SERVE = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
model = tf.saved_model.load(sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf-8"))
out = model.signatures["serving_default"](text=tf.constant(texts))
assert model.signatures["serving_default"](text=tf.constant([], tf.string))["num_entities"].shape == (0,)
pieces = model.signatures["tokenize"](text=tf.constant(texts))
result = {"entities": [], "ids": []}
for i in range(len(texts)):
    n = int(out["num_entities"][i])
    result["entities"].append([[int(out[k][i, j]) for k in ("entity_start", "entity_end", "entity_label")]
                               + [float(out["entity_score"][i, j])] for j in range(n)])
    result["ids"].append([int(x) for x in pieces["ids"][i, :int(pieces["lengths"][i])]])
assert not any(name.startswith("biobert") for name in sys.modules)
print(json.dumps(result))
"""


def test_saved_model_gives_the_predict_file_entities(model, abstracts, tmp_path):
    """--export_dir from the fine-tuned folder alone; the SavedModel, reloaded in a fresh process without this
    project, tags 200 PubMed sentences as run_ner.py --predict_file does: same spans and labels, scores to 1e-4."""
    export_dir = tmp_path / "exported"
    out = tmp_path / "export_out"
    run_ner(["--export_dir", export_dir, f"--init_checkpoint={model}", f"--output_dir={out}",
             f"--dllog_path={out / 'dllog.json'}", "--noamp", "--nouse_xla"])
    for name in ("saved_model.pb", "label_map.json", "vocab.txt", "bert_config.json"):
        assert (export_dir / name).is_file(), name
    tokenizer = tokenization.FullTokenizer(model / "vocab.txt", do_lower_case=False)
    segmenter = NLTKSegmenter()
    sentences = [s for a in abstracts[:80] for s in segmenter.segment_string(a)
                 if len(tokenizer.tokenize(s)) <= 126 and segmenter.spans(s) == [(0, len(s))]][:200]
    assert len(sentences) == 200
    # and an empty line, non-ASCII text (character offsets, not bytes) and an empty batch
    sentences += ["", "Café ΑΒΓ-α: NaCl\u00a0and sodium chloride in naïve rats."] + \
        [s.replace(" ", "\u00a0 ", 3) for s in sentences[:5]]
    records = predict(model, sentences, tmp_path, "sentences.txt")
    (tmp_path / "texts.json").write_text(json.dumps(sentences), encoding="utf-8")
    proc = run_python(["-c", LOAD_AND_SERVE, export_dir, tmp_path / "texts.json"])
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    labels = json.loads((export_dir / "label_map.json").read_text())["labels"]
    assert [[(e[0], e[1]) for e in s] for s in served["entities"]] == \
        [[(e["start"], e["end"]) for e in r["entities"]] for r in records]
    assert {labels[e[2]] for s in served["entities"] for e in s} <= {"B", "I"}     # the first word's label
    assert [e[3] for s in served["entities"] for e in s] == \
        pytest.approx([e["score"] for r in records for e in r["entities"]], abs=1e-4)
    assert sum(len(s) for s in served["entities"]) >= 20
    assert served["ids"] == [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(s)) for s in sentences]


def test_in_graph_tokenizer_ids_equal_ours(shared_data, uncased_vocab, cased_vocab):
    """tensorflow-text's FastBertTokenizer, as exported, gives our ids on every BC5CDR test sentence and every
    line of the PubMed sample, uncased and cased."""
    import tensorflow as tf

    from biobert import export

    pubmed = [line for line in (shared_data / "pubmed" / "PubMedAbstract_1MB.txt").read_text(
        encoding="utf-8").split("\n") if line.strip()]
    blocks = (shared_data / "BC5CDR" / "chem" / "test.tsv").read_text(encoding="utf-8").split("\n\n")
    bc5cdr = [" ".join(row.split("\t")[0] for row in block.splitlines() if row) for block in blocks if block.strip()]
    assert len(bc5cdr) == 5626 and len(pubmed) > 700
    for vocab, lower in ((uncased_vocab, True), (cased_vocab, False)):
        ours = tokenization.FullTokenizer(vocab, do_lower_case=lower)
        fast = export.fast_tokenizer(export.vocabulary(vocab), lower)
        for corpus in (bc5cdr, pubmed):
            differ = []
            for start in range(0, len(corpus), 512):
                chunk = corpus[start:start + 512]
                for text, ids in zip(chunk, fast.tokenize(tf.constant(chunk)).to_list()):
                    if ids != ours.convert_tokens_to_ids(ours.tokenize(text)):
                        differ.append(text)
            assert differ == []
