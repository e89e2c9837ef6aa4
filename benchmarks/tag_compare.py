"""Raw-text NER against the Hugging Face pipeline: the sentences both sides tag, and how many spans agree.

    python benchmarks/tag_compare.py split --predictions=OURS/predictions.jsonl --output=/tmp/sentences.jsonl
    python benchmarks/tag_compare.py compare --ours=OURS/predictions.jsonl --peer=/tmp/peer.jsonl

``split`` writes each document with the sentence spans run_ner.py used (biobert.segmentation's Punkt), for
benchmarks/peer_hf_tagging.py. ``compare`` counts the entity spans (start, end) found by both, by ours only and
by the peer only, and prints a sample of the differences with their context.
"""
import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert.segmentation import NLTKSegmenter  # noqa: E402


def read(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def split(args):
    segmenter = NLTKSegmenter()
    with open(args.output, "w", encoding="utf-8") as handle:
        for record in read(args.predictions):
            spans = segmenter.spans(record["text"]) if record["text"].strip() else []
            handle.write(json.dumps({"id": record["id"], "text": record["text"], "sentences": spans},
                                    ensure_ascii=False) + "\n")
    print(f"wrote {args.output} ({segmenter.source})")


def compare(args):
    ours, peer = read(args.ours), read(args.peer)
    assert [r["id"] for r in ours] == [r["id"] for r in peer], "not the same documents"
    both = only_ours = only_peer = 0
    kinds = collections.Counter()
    samples = []
    for a, b in zip(ours, peer):
        sa = {(e["start"], e["end"]) for e in a["entities"]}
        sb = {(e["start"], e["end"]) for e in b["entities"]}
        both += len(sa & sb)
        only_ours += len(sa - sb)
        only_peer += len(sb - sa)
        for start, end in sorted(sa ^ sb):
            other = sb if (start, end) in sa else sa
            overlapping = [s for s in other if s[0] < end and start < s[1]]
            kind = "overlapping a different span" if overlapping else "no overlapping span on the other side"
            kinds[("ours" if (start, end) in sa else "peer") + ": " + kind] += 1
            if len(samples) < args.samples:
                text = a["text"]
                samples.append(f"  {'ours' if (start, end) in sa else 'peer'} only {text[start:end]!r} "
                               f"(other side: {[text[s:e] for s, e in overlapping]}) in "
                               f"...{text[max(0, start - 40):end + 40]!r}...")
    total_ours, total_peer = both + only_ours, both + only_peer
    print(f"spans: ours {total_ours}, peer {total_peer}, both {both} "
          f"({100 * both / max(total_ours, 1):.2f}% of ours, {100 * both / max(total_peer, 1):.2f}% of the peer's)")
    for kind, n in kinds.most_common():
        print(f"  {kind}: {n}")
    print("\n".join(samples))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("split")
    p.add_argument("--predictions", required=True)
    p.add_argument("--output", required=True)
    p = sub.add_parser("compare")
    p.add_argument("--ours", required=True)
    p.add_argument("--peer", required=True)
    p.add_argument("--samples", type=int, default=15)
    args = parser.parse_args(argv)
    split(args) if args.command == "split" else compare(args)


if __name__ == "__main__":
    main()
