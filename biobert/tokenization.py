"""BERT WordPiece tokenization, behaving exactly like google-research/bert ``tokenization.py``.

The pipeline is Google's (the same file NVIDIA's BioBERT recipe ships):

1. ``BasicTokenizer``: drop NUL, U+FFFD and control characters, turn whitespace into spaces,
   put spaces around CJK ideographs, split on whitespace, lower-case and strip accents
   (uncased models only), and split every punctuation character into its own token.
2. ``WordpieceTokenizer``: greedy longest-match-first split of each word into vocabulary
   pieces, continuation pieces prefixed with ``##``; a word that cannot be split fully
   (or is longer than ``max_input_chars_per_word``) becomes ``[UNK]``.

``FullTokenizer`` runs both and maps tokens to ids and back. The only departures from Google:
errors a user can cause raise ``InputError`` (missing/empty vocabulary, casing that does not
match a known checkpoint), an unknown token maps to ``[UNK]``'s id instead of ``KeyError``,
and WordPiece results are cached per word, which changes speed only.
"""
import collections
import re
import unicodedata

from biobert.errors import InputError

UNK_TOKEN = "[UNK]"


def convert_to_unicode(text):
    """Returns ``text`` as ``str``: ``str`` unchanged, ``bytes`` decoded as UTF-8 (bad bytes dropped).

    Raises ValueError for any other type, as Google's version does.
    """
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    raise ValueError(f"Unsupported string type: {type(text)}")


def load_vocab(vocab_file):
    """Reads a vocabulary file (one token per line, line N -> id N, counting from 0).

    Each line is stripped of surrounding whitespace (as Google's ``token.strip()``); a blank line
    still takes an id. Returns ``collections.OrderedDict`` token -> id. Raises InputError naming
    the file when it is missing, empty, or not UTF-8 (naming the line).
    """
    path = str(vocab_file)
    vocab = collections.OrderedDict()
    try:
        # newline="\n": split on "\n" only, like tf.io.gfile's readline; strip() removes any "\r".
        with open(path, "r", encoding="utf-8", newline="\n") as reader:
            for index, line in enumerate(reader):
                vocab[line.strip()] = index
    except FileNotFoundError:
        raise InputError("vocabulary file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("vocabulary file is a directory", path=path) from None
    except UnicodeDecodeError as err:
        line_no = _line_of_byte(path, err.start)
        raise InputError(f"vocabulary file is not UTF-8 ({err.reason})", path=path, line=line_no) from None
    if not vocab:
        raise InputError("vocabulary file is empty", path=path)
    return vocab


def _line_of_byte(path, offset):
    """1-based line number that contains byte ``offset`` of the file at ``path`` (best effort)."""
    try:
        with open(path, "rb") as f:
            head = f.read(offset)
        return head.count(b"\n") + 1
    except OSError:
        return None


def whitespace_tokenize(text):
    """Splits ``text`` on runs of whitespace (Python's ``str.split``); returns a list of str."""
    text = text.strip()
    if not text:
        return []
    return text.split()


_LOWER_CASED_MODELS = (
    "uncased_L-24_H-1024_A-16",
    "uncased_L-12_H-768_A-12",
    "multilingual_L-12_H-768_A-12",
    "chinese_L-12_H-768_A-12",
)
_CASED_MODELS = (
    "cased_L-12_H-768_A-12",
    "cased_L-24_H-1024_A-16",
    "multi_cased_L-12_H-768_A-12",
)


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
    """Raises InputError when ``do_lower_case`` contradicts a known Google checkpoint's casing.

    Like Google's check, it only looks at paths of the form ``.../<model_name>/bert_model.ckpt``
    whose ``<model_name>`` is one of Google's released BERT models; anything else passes.
    Returns None.
    """
    if not init_checkpoint:
        return
    match = re.match(r"^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", str(init_checkpoint))
    if match is None:
        return
    model_name = match.group(1)
    if model_name in _LOWER_CASED_MODELS and not do_lower_case:
        given, kind, wanted = False, "lower-cased (uncased)", True
    elif model_name in _CASED_MODELS and do_lower_case:
        given, kind, wanted = True, "cased", False
    else:
        return
    raise InputError(
        f"--do_lower_case={given} does not match the checkpoint: `{model_name}` is a {kind} model, "
        f"so pass --do_lower_case={wanted} to tokenize the way it was pre-trained",
        path=init_checkpoint,
    )


def is_whitespace(char):
    """True for space, tab, newline, carriage return and Unicode category Zs."""
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char):
    """True for Unicode categories Cc and Cf, except tab/newline/carriage return (whitespace)."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def is_punctuation(char):
    """True for every non-alphanumeric printable ASCII character and Unicode category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


# CJK ideograph blocks, as in Google's ``_is_chinese_char`` (Hangul, kana etc. are NOT included).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_cjk_char(cp):
    """True if code point ``cp`` is a CJK ideograph (one of Google's ranges)."""
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


# What the cleaning + CJK step of BasicTokenizer does with one character (``char_action``).
DROP, SPACE, PAD, KEEP = "drop", "space", "pad", "keep"


_CHAR_ACTIONS = {}  # memo: character -> action


def char_action(char):
    """What BasicTokenizer's cleaning does with ``char``: DROP (NUL, U+FFFD, control characters), SPACE
    (whitespace), PAD (a CJK ideograph, which becomes a word of its own) or KEEP.

    Memoized per character: a text repeats few distinct characters.
    """
    action = _CHAR_ACTIONS.get(char)
    if action is None:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or is_control(char):
            action = DROP
        elif is_whitespace(char):
            action = SPACE
        elif is_cjk_char(cp):
            action = PAD
        else:
            action = KEEP
        _CHAR_ACTIONS[char] = action
    return action


def strip_accents(text):
    """NFD-normalizes ``text`` and drops combining marks (category Mn): what uncased models do after lower-casing."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFD", text)
    return "".join(char for char in text if unicodedata.category(char) != "Mn")


class BasicTokenizer:
    """Splits text into words and punctuation, lower-casing and stripping accents if uncased."""

    def __init__(self, do_lower_case=True):
        """``do_lower_case``: lower-case and strip accents (uncased models); False keeps both."""
        self.do_lower_case = do_lower_case

    def tokenize(self, text):
        """Tokenizes a ``str`` (or UTF-8 ``bytes``); returns a list of str tokens."""
        text = convert_to_unicode(text)
        text = self._clean_text(text)
        split_tokens = []
        for token in whitespace_tokenize(text):
            if self.do_lower_case:
                token = strip_accents(token.lower())
            split_tokens.extend(self._run_split_on_punc(token))
        return whitespace_tokenize(" ".join(split_tokens))

    @staticmethod
    def _clean_text(text):
        """Drops NUL/U+FFFD/control characters, maps whitespace to " ", puts spaces around CJK.

        Google does this in two passes (``_clean_text`` then ``_tokenize_chinese_chars``);
        the result is the same since cleaning never produces or removes a CJK character.
        """
        if text.isascii() and text.isprintable():
            return text  # common case: nothing to drop, pad or replace
        output = []
        for char in text:
            action = char_action(char)
            if action == KEEP:
                output.append(char)
            elif action == SPACE:
                output.append(" ")
            elif action == PAD:
                output.append(" " + char + " ")
        return "".join(output)

    @staticmethod
    def _run_split_on_punc(text):
        """Splits ``text`` (no whitespace) so each punctuation character is its own token."""
        output = []
        current = []
        for char in text:
            if is_punctuation(char):
                if current:
                    output.append("".join(current))
                    current = []
                output.append(char)
            else:
                current.append(char)
        if current:
            output.append("".join(current))
        return output


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece splitting against a vocabulary."""

    def __init__(self, vocab, unk_token=UNK_TOKEN, max_input_chars_per_word=200, cache_size=1 << 18):
        """``vocab``: mapping (or set) of pieces; continuation pieces start with ``##``.

        ``max_input_chars_per_word``: longer words become ``unk_token`` (200, as in Google's and
        NVIDIA's ``tokenization.py``). ``cache_size``: how many words' results to keep; the
        cache is emptied when full.
        """
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self._cache_size = cache_size
        self._cache = {}
        # No piece is longer than this, so longer substrings need not be looked up.
        self._max_piece_chars = max((len(piece) for piece in vocab), default=0)

    def tokenize(self, text):
        """Splits each whitespace-separated word of ``text``; returns a list of pieces.

        Example: "unaffable" -> ["un", "##aff", "##able"].
        """
        text = convert_to_unicode(text)
        output = []
        for word in whitespace_tokenize(text):
            pieces = self._cache.get(word)
            if pieces is None:
                pieces = self._tokenize_word(word)
                if len(self._cache) >= self._cache_size:
                    self._cache.clear()
                self._cache[word] = pieces
            output.extend(pieces)
        return output

    def _tokenize_word(self, word):
        """WordPiece split of one word (no whitespace); returns a tuple of pieces or (unk,)."""
        if len(word) > self.max_input_chars_per_word:
            return (self.unk_token,)
        pieces = []
        start = 0
        while start < len(word):
            end = min(len(word), start + self._max_piece_chars)
            piece = None
            while start < end:
                candidate = word[start:end]
                if start > 0:
                    candidate = "##" + candidate
                if candidate in self.vocab:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                return (self.unk_token,)
            pieces.append(piece)
            start = end
        return tuple(pieces)


class FullTokenizer:
    """Basic + WordPiece tokenization with a vocabulary file, plus token <-> id conversion."""

    def __init__(self, vocab_file, do_lower_case=True):
        """``vocab_file``: path of a BERT vocab.txt; ``do_lower_case``: True for uncased models.

        Raises InputError when the vocabulary file is missing or empty.
        """
        self.vocab_file = str(vocab_file)
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        self._word_ids = {}

    def word_ids(self, word, cache_size=1 << 18):
        """The ids of ``tokenize(word)`` as a tuple, ``[UNK]``'s id alone when it tokenizes to nothing (a lone
        control character). Cached per word, since a corpus repeats its words: the same ids as tokenizing each
        time, without tokenizing a word twice."""
        ids = self._word_ids.get(word)
        if ids is None:
            ids = tuple(self.convert_tokens_to_ids(self.tokenize(word) or [UNK_TOKEN]))
            if len(self._word_ids) >= cache_size:
                self._word_ids.clear()
            self._word_ids[word] = ids
        return ids

    def tokenize(self, text):
        """Tokenizes ``text`` (str or UTF-8 bytes) into a list of WordPiece tokens."""
        split_tokens = []
        for token in self.basic_tokenizer.tokenize(text):
            split_tokens.extend(self.wordpiece_tokenizer.tokenize(token))
        return split_tokens

    def convert_tokens_to_ids(self, tokens):
        """Maps tokens to ids (list of int); a token not in the vocabulary gets ``[UNK]``'s id.

        Raises InputError for an unknown token when the vocabulary has no ``[UNK]``.
        """
        vocab = self.vocab
        unk_id = vocab.get(UNK_TOKEN)
        ids = []
        for token in tokens:
            index = vocab.get(token, unk_id)
            if index is None:
                raise InputError(f"token {token!r} is not in the vocabulary, which has no {UNK_TOKEN}",
                                 path=self.vocab_file)
            ids.append(index)
        return ids

    def convert_ids_to_tokens(self, ids):
        """Maps ids (ints) back to tokens (list of str); raises InputError for an id out of range."""
        tokens = []
        for index in ids:
            token = self.inv_vocab.get(int(index))
            if token is None:
                raise InputError(f"id {index} is not in the vocabulary ({len(self.inv_vocab)} ids)",
                                 path=self.vocab_file)
            tokens.append(token)
        return tokens
