"""Sentence segmentation with NLTK's Punkt, no downloaded NLTK data needed (see NLTKSegmenter).

Used by the pre-training data preparation (data/TextSharding.py) and by raw-text prediction (biobert.rawtext).
"""


# Abbreviations frequent in biomedical text that Punkt should never treat as sentence ends.
BIOMEDICAL_ABBREVIATIONS = (
    "e.g", "i.e", "al", "et al", "fig", "figs", "vs", "cf", "approx", "ca", "eq", "eqs", "ref", "refs",
    "i.v", "i.p", "i.m", "s.c", "p.o", "b.i.d", "t.i.d", "q.i.d", "no", "nos", "resp", "dr", "sp", "spp",
)


def _downloaded_punkt():
    """Return NLTK's downloaded English Punkt tokenizer, or None if no model is installed."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        return None
    try:
        from nltk.tokenize.punkt import PunktTokenizer

        return PunktTokenizer("english")
    except (LookupError, ImportError, OSError, ValueError):
        return None


class NLTKSegmenter:
    """Sentence segmenter: ``segment_string(text) -> list of sentences``.

    Uses the downloaded 'punkt_tab' English model when ``nltk.data`` finds one; otherwise a
    PunktSentenceTokenizer trained on ``train_text`` (a sample of the corpus itself) when given, or
    Punkt's defaults. In the last two cases common biomedical abbreviations are added.
    """

    def __init__(self, train_text=None, use_downloaded=True):
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer, PunktTrainer

        self.source = None
        tokenizer = _downloaded_punkt() if use_downloaded else None
        if tokenizer is not None:
            self.source = "nltk punkt_tab (downloaded)"
        else:
            if train_text:
                trainer = PunktTrainer()
                trainer.INCLUDE_ALL_COLLOCS = True
                trainer.train(train_text, finalize=True)
                params = trainer.get_params()
                self.source = "punkt trained on the corpus"
            else:
                params = PunktParameters()
                self.source = "punkt defaults"
            params.abbrev_types.update(BIOMEDICAL_ABBREVIATIONS)
            tokenizer = PunktSentenceTokenizer(params)
        self._tokenizer = tokenizer

    def segment_string(self, article):
        """Split one article into a list of stripped, non-empty sentences."""
        return [s.strip() for s in self._tokenizer.tokenize(article) if s.strip()]

    def spans(self, text):
        """Character spans ``(start, end)`` of the sentences of ``text``, surrounding whitespace excluded,
        empty ones dropped: ``text[start:end]`` is what segment_string returns, in order."""
        out = []
        for start, end in self._tokenizer.span_tokenize(text):
            piece = text[start:end]
            stripped = piece.strip()
            if stripped:
                start += len(piece) - len(piece.lstrip())
                out.append((start, start + len(stripped)))
        return out
