"""The NER task's data: the corpus file (biobert.ner.corpus), the label set (biobert.ner.labels), and the model's
features and decoded predictions (biobert.ner.features); their public names are importable from here.

Flow (run_ner.py):

    sentences = read_ner_file("test.tsv")                    # 30-word pieces; bad columns -> file:line
    check_tag_scheme(train + devel)                           # a stray tag ('49', 'b') -> file:line
    label_map = LabelMap.from_sentences([train, devel])       # [PAD], B, I, O, X, [CLS], [SEP]
                                                              # (or LabelMap(parse_label_set("B,I,O,b")))
    check_labels(sentences, label_map)                        # unknown tag -> InputError file:line
    features = convert_sentences(sentences, tokenizer, label_map, 128)
    batch = pad_features(features, 128)                       # model inputs [N, 128]
    ... the model gives probs [N, 128, num_labels] ...
    probs_list = [p[:len(f["input_ids"])] for p, f in zip(probs, features)]
    counts, text = write_prediction_files(out_dir, sentences, features, probs_list, label_map)
"""
from biobert.ner.corpus import (DOCSTART, LINE_SPACE, OUTSIDE, TAG_PATTERN, Sentence, check_tag_scheme,
                                read_ner_file, split_sentence, tag_counts, tags_seen)
from biobert.ner.features import (FEATURE_KEYS, continues, convert_sentence, convert_sentences,
                                  decode_sentence, pad_features, write_prediction_files)
from biobert.ner.labels import (CLS, PAD, SEP, SPECIAL_LABELS, X, LabelMap, check_labels,
                                parse_label_set)

__all__ = ["DOCSTART", "LINE_SPACE", "OUTSIDE", "TAG_PATTERN", "Sentence", "check_tag_scheme", "read_ner_file",
           "split_sentence", "tag_counts", "tags_seen", "FEATURE_KEYS", "continues", "convert_sentence",
           "convert_sentences", "decode_sentence", "pad_features", "write_prediction_files", "CLS", "PAD", "SEP",
           "SPECIAL_LABELS", "X", "LabelMap", "check_labels", "parse_label_set"]
