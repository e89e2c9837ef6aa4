"""The NER label set: label <-> id (LabelMap, saved as label_map.json), the check of a corpus's labels against
it, and a label set declared with --labels."""
import json
import os

from biobert.errors import InputError, require_file
from biobert.fileio import atomic_open
from biobert.ner.corpus import LINE_SPACE, tags_seen

PAD, X, CLS, SEP = "[PAD]", "X", "[CLS]", "[SEP]"
SPECIAL_LABELS = (PAD, X, CLS, SEP)


class LabelMap:
    """Label <-> id. Id 0 is padding (``[PAD]``); the word-level (entity) labels, sorted, get
    ids 1..n; then ``X`` (non-first sub-words), ``[CLS]`` and ``[SEP]``.

    For BLUE's B/I/O this is ``[PAD] B I O X [CLS] [SEP]`` = ids 0..6, the original's ids.
    """

    def __init__(self, entity_labels, source="built from the training data"):
        self.source = source        # where the set came from, for messages (not part of equality)
        entity_labels = sorted(set(entity_labels))
        reserved = [label for label in entity_labels if label in SPECIAL_LABELS]
        if reserved:
            raise ValueError(f"labels {reserved} are reserved for the model's own use")
        if not entity_labels:
            raise ValueError("no entity labels")
        self._labels = [PAD] + entity_labels + [X, CLS, SEP]
        self._ids = {label: i for i, label in enumerate(self._labels)}
        self._num_entity = len(entity_labels)

    @classmethod
    def from_sentences(cls, sentence_lists):
        """Label map of every label seen in ``sentence_lists`` (a list of lists of Sentences).

        InputError with file:line if the data uses a reserved name (``X``, ``[CLS]``, ...).
        """
        seen = set()
        for sentences in sentence_lists:
            for sentence in sentences:
                for k, label in enumerate(sentence.labels):
                    if label in SPECIAL_LABELS:
                        raise InputError(f"label {label!r} is reserved for the model's own use",
                                         path=sentence.path, line=sentence.line + k)
                    seen.add(label)
        if not seen:
            raise InputError("no labelled words to build the label set from")
        return cls(seen)

    @property
    def labels(self):
        """All labels, index = id (index 0 = ``[PAD]``)."""
        return list(self._labels)

    @property
    def entity_labels(self):
        """The word-level labels, in id order."""
        return self._labels[1:1 + self._num_entity]

    @property
    def entity_ids(self):
        """Ids of the word-level labels (1..n)."""
        return list(range(1, 1 + self._num_entity))

    @property
    def num_labels(self):
        """Number of model outputs, padding included."""
        return len(self._labels)

    def __contains__(self, label):
        return label in self._ids

    def __eq__(self, other):
        return isinstance(other, LabelMap) and self._labels == other._labels

    def __repr__(self):
        return f"LabelMap({self._labels!r})"

    def is_entity(self, label):
        """True for a word-level label (not padding, ``X``, ``[CLS]``, ``[SEP]``)."""
        return label in self._ids and 1 <= self._ids[label] <= self._num_entity

    def id(self, label):
        """Id of ``label``; KeyError if unknown."""
        try:
            return self._ids[label]
        except KeyError:
            raise KeyError(f"label {label!r} not in the label set {self._labels}") from None

    def label(self, id_):
        """Label of id ``id_``."""
        return self._labels[int(id_)]

    def to_json(self, path):
        """Write ``{"labels": [...]}`` (index = id) to ``path`` atomically."""
        with atomic_open(path, "w") as handle:
            json.dump({"labels": self._labels}, handle, indent=1)
            handle.write("\n")

    @classmethod
    def from_json(cls, path):
        """Read a file written by to_json; InputError if missing or not a label map."""
        path = require_file(path, "label map")
        try:
            with open(path, encoding="utf-8") as handle:
                labels = json.load(handle)["labels"]
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"not a label map file ({err})", path=path) from None
        n = len(labels) - 4 if isinstance(labels, list) else -1
        if (n < 1 or labels[0] != PAD or labels[-3:] != [X, CLS, SEP]
                or labels[1:1 + n] != sorted(set(labels[1:1 + n]))
                or any(label in SPECIAL_LABELS for label in labels[1:1 + n])):
            raise InputError("not a label map: expected [PAD], sorted labels, X, [CLS], [SEP]",
                             path=path)
        return cls(labels[1:1 + n], source=f"of the trained model, {path}")


def check_labels(sentences, label_map):
    """Raise InputError naming file:line at the first word whose label is not a word-level
    label of ``label_map`` (e.g. a test-file tag never seen in training); the message names where the
    label set came from (LabelMap.source) and lists the tags of that file with their counts."""
    for sentence in sentences:
        for k, label in enumerate(sentence.labels):
            if not label_map.is_entity(label):
                hint = {"of": "", "declared": "; add it to --labels if it is meant"}.get(
                    label_map.source.split()[0], "; declare the label set with --labels to include it")
                raise InputError(
                    f"label {label!r} is not in the label set {', '.join(label_map.entity_labels)} "
                    f"({label_map.source}){hint}; {tags_seen(sentences, sentence.path)}",
                    path=sentence.path, line=sentence.line + k)


def parse_label_set(value):
    """The declared NER label set of ``value``: a comma-separated list of tags, or the path of a file with
    one tag a line (blank lines ignored) or of a label_map.json. Returns the sorted tags; InputError for an
    empty set, a tag with whitespace, a reserved name (X, [CLS], ...) or a file that is missing or unreadable.
    """
    value = value.strip()
    path = None
    if os.path.isfile(value):
        path = value
        try:
            with open(path, encoding="utf-8-sig") as handle:
                text = handle.read()
        except UnicodeDecodeError as err:
            raise InputError(f"not UTF-8 text ({err.reason})", path=path) from None
        if text.lstrip().startswith("{"):
            return LabelMap.from_json(path).entity_labels
        items = [(number, line.strip(LINE_SPACE)) for number, line in enumerate(text.split("\n"), start=1)]
        items = [(number, tag) for number, tag in items if tag]
    elif "," not in value and (os.sep in value or value.endswith((".txt", ".json", ".tsv"))):
        raise InputError("labels file not found (--labels)", path=value)
    else:
        items = [(None, tag.strip()) for tag in value.split(",")]
    tags = []
    for number, tag in items:
        where = {"path": path, "line": number} if path else {}
        if not tag:
            raise InputError(f"--labels={value!r} has an empty tag", **where)
        if any(c in LINE_SPACE for c in tag):
            raise InputError(f"tag {tag!r} holds whitespace", **where)
        if tag in SPECIAL_LABELS:
            raise InputError(f"tag {tag!r} is reserved for the model's own use", **where)
        tags.append(tag)
    if not tags:
        raise InputError("no tags in the labels file", path=path)
    return sorted(set(tags))
