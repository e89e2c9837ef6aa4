"""Shard one-article-per-line text into sentence-per-line training and test shards.

Each output shard holds whole documents: one sentence per line, a blank line after every document.
Sentence segmentation uses NLTK's Punkt and needs no downloaded NLTK data (see NLTKSegmenter).

Layout (as NVIDIA's bertPrep.py): for ``output_name_prefix = <dir>/pubmed_baseline`` the shards
are ``<dir>/training/pubmed_baseline_training_<i>.txt`` and ``<dir>/test/pubmed_baseline_test_<i>.txt``.
"""
import heapq
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert.errors import InputError  # noqa: E402
from biobert.progress import Progress  # noqa: E402

# The segmenter lives in biobert (raw-text prediction splits sentences with the same one).
from biobert.segmentation import BIOMEDICAL_ABBREVIATIONS, NLTKSegmenter, _downloaded_punkt  # noqa: E402,F401


def read_training_sample(input_files, max_chars=4_000_000):
    """Return up to ``max_chars`` characters of the input files' text (to train Punkt on)."""
    parts, size = [], 0
    for path in input_files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                parts.append(line)
                size += len(line)
                if size >= max_chars:
                    return "".join(parts)
    return "".join(parts)


def shard_path(output_name_prefix, split, index):
    """Path of shard ``index`` of ``split`` ('training' or 'test') for a given prefix."""
    directory, name = os.path.split(output_name_prefix)
    return os.path.join(directory, split, f"{name}_{split}_{index}.txt")


def is_test_article(index, fraction_test_set):
    """Whether article number ``index`` (0-based) belongs to the test split.

    Spreads test articles evenly: after n articles exactly floor(n * fraction) are test articles.
    """
    return int((index + 1) * fraction_test_set) > int(index * fraction_test_set)


class Sharding:
    """Distribute articles (one per line in ``input_files``) over training and test shards.

    Streaming with bounded memory: articles are segmented as they are read, each goes to the
    least-filled shard (by sentences) of its split, and shard text is buffered and appended to
    temporary files that are renamed into place at the end.
    """

    def __init__(self, input_files, output_name_prefix, n_training_shards, n_test_shards, fraction_test_set,
                 segmenter=None, buffer_chars=32_000_000):
        if isinstance(input_files, str):
            input_files = [input_files]
        self.input_files = list(input_files)
        self.output_name_prefix = output_name_prefix
        self.n_training_shards = int(n_training_shards)
        self.n_test_shards = int(n_test_shards)
        self.fraction_test_set = float(fraction_test_set)
        self.segmenter = segmenter
        self.buffer_chars = buffer_chars
        if self.n_training_shards < 1:
            raise InputError(f"n_training_shards must be at least 1, got {n_training_shards}")
        if not 0.0 <= self.fraction_test_set < 1.0:
            raise InputError(f"fraction_test_set must lie in [0, 1), got {fraction_test_set}")
        if self.fraction_test_set > 0 and self.n_test_shards < 1:
            raise InputError("a test split needs n_test_shards >= 1")
        for path in self.input_files:
            if not os.path.isfile(path):
                raise InputError("input file not found", path=path)

    def _articles(self):
        for path in self.input_files:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    line = line.strip()
                    if line:
                        yield line

    def run(self):
        """Segment and write all shards. Returns counts per split.

        Result: {'articles': n, 'training': {'articles', 'sentences', 'files'}, 'test': {...}}.
        Raises InputError when there are fewer articles than shards in a split.
        """
        if self.segmenter is None:
            self.segmenter = NLTKSegmenter(train_text=read_training_sample(self.input_files))
        splits = {"training": self.n_training_shards}
        if self.fraction_test_set > 0:
            splits["test"] = self.n_test_shards
        files = {s: [shard_path(self.output_name_prefix, s, i) for i in range(n)] for s, n in splits.items()}
        temps = {s: [f"{p}.tmp" for p in paths] for s, paths in files.items()}
        heaps = {s: [(0, i) for i in range(n)] for s, n in splits.items()}
        docs = {s: [0] * n for s, n in splits.items()}
        buffers = {s: [[] for _ in range(n)] for s, n in splits.items()}
        for split, paths in temps.items():
            os.makedirs(os.path.dirname(paths[0]), exist_ok=True)
            for p in paths:
                open(p, "w", encoding="utf-8").close()
        buffered = 0
        total = 0
        progress = Progress("sharding", unit="articles")
        try:
            for index, article in enumerate(self._articles()):
                total += 1
                progress.update(total)
                sentences = self.segmenter.segment_string(article)
                if not sentences:
                    continue
                split = "test" if "test" in splits and is_test_article(index, self.fraction_test_set) else "training"
                load, shard = heapq.heappop(heaps[split])
                heapq.heappush(heaps[split], (load + len(sentences), shard))
                docs[split][shard] += 1
                text = "\n".join(sentences) + "\n\n"
                buffers[split][shard].append(text)
                buffered += len(text)
                if buffered >= self.buffer_chars:
                    self._flush(buffers, temps)
                    buffered = 0
            self._flush(buffers, temps)
            for split, counts in docs.items():
                empty = [i for i, c in enumerate(counts) if c == 0]
                if empty:
                    raise InputError(
                        f"{sum(counts)} {split} articles cannot fill {len(counts)} {split} shards; "
                        f"use fewer shards", path=",".join(self.input_files))
            for split in splits:
                for tmp, final in zip(temps[split], files[split]):
                    os.replace(tmp, final)
        finally:
            for split in splits:
                for tmp in temps[split]:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
        result = {"articles": total}
        for split in splits:
            result[split] = {
                "articles": sum(docs[split]),
                "sentences": sum(load for load, _ in heaps[split]),
                "files": files[split],
            }
        return result

    @staticmethod
    def _flush(buffers, temps):
        for split, shard_buffers in buffers.items():
            for i, parts in enumerate(shard_buffers):
                if parts:
                    with open(temps[split][i], "a", encoding="utf-8", newline="\n") as handle:
                        handle.write("".join(parts))
                    parts.clear()
