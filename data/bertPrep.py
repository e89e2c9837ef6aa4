"""Preprocessing for BioBERT pre-training (NVIDIA's bertPrep.py interface).

    BERT_PREP_WORKING_DIR=/data python data/bertPrep.py --action download --dataset pubmed_baseline
    ... --action text_formatting --dataset pubmed_baseline
    ... --action sharding --dataset pubmed_baseline [--n_training_shards N --n_test_shards M]
            (without them: one shard per 10000 articles of a split, at least 1, at most 1472)
    ... --action create_tfrecord_files --dataset pubmed_baseline --max_seq_length 128 \
            --max_predictions_per_seq 20 --vocab_file /path/vocab.txt [--do_lower_case 0]

Directories under the working directory:
    download/pubmed/baseline/*.xml.gz
    formatted_one_article_per_line/pubmed_baseline_one_article_per_line.txt
    sharded/pubmed_baseline/{training,test}/pubmed_baseline_{training,test}_<i>.txt
    tfrecord/lower_case_<0|1>_seq_len_<L>_max_pred_<P>_masked_lm_prob_<p>_random_seed_<s>_dupe_factor_<d>
        _shard_<N>_test_split_<pct>/pubmed_baseline/{training,test}/pubmed_baseline_{training,test}_<i>.tfrecord
"""
import argparse
import multiprocessing
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

from biobert.errors import InputError  # noqa: E402

DATASETS = ("pubmed_baseline", "pubmed_daily_update", "google_pretrained_weights")
ARTICLES_PER_SHARD = 10000   # the full baseline (~15M abstracts) gives the original's 1472 training shards
MAX_SHARDS = 1472


def shards_for(articles):
    """How many shards a split of ``articles`` articles gets when the count is not given."""
    return max(1, min(MAX_SHARDS, articles // ARTICLES_PER_SHARD))


def count_articles(paths):
    """Non-blank lines (articles) of one-article-per-line files."""
    total = 0
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def derive_shard_counts(args, inputs):
    """Fill in args.n_training_shards / n_test_shards (when not given) from the corpus size."""
    from TextSharding import is_test_article

    if args.n_training_shards is not None and args.n_test_shards is not None:
        return
    articles = count_articles(inputs)
    test = sum(1 for i in range(articles) if is_test_article(i, args.fraction_test_set)) \
        if args.fraction_test_set > 0 else 0
    if args.n_training_shards is None:
        args.n_training_shards = shards_for(articles - test)
    if args.n_test_shards is None:
        args.n_test_shards = shards_for(test)
    print(f"{articles} articles ({articles - test} training, {test} test): {args.n_training_shards} training "
          f"and {args.n_test_shards} test shards (N_TRAINING_SHARDS / N_TEST_SHARDS or --n_training_shards / "
          f"--n_test_shards override)")


def shard_file(dirs, dataset, split, index):
    return os.path.join(dirs["sharded"], dataset, split, f"{dataset}_{split}_{index}.txt")


def count_shards(dirs, dataset, split):
    """The number of consecutive shard files 0, 1, ... of ``split`` that sharding wrote."""
    n = 0
    while os.path.isfile(shard_file(dirs, dataset, split, n)):
        n += 1
    return n


def remove_stale_shards(dirs, dataset, split, keep):
    """Delete shard files numbered ``keep`` and above (left by an earlier run with more shards)."""
    n = keep
    while os.path.isfile(shard_file(dirs, dataset, split, n)):
        os.remove(shard_file(dirs, dataset, split, n))
        n += 1


def tfrecord_folder_name(args):
    """The original's TFRecord folder name, e.g. lower_case_1_seq_len_128_..._shard_1472_test_split_10."""
    return (f"lower_case_{args.do_lower_case}_seq_len_{args.max_seq_length}"
            f"_max_pred_{args.max_predictions_per_seq}_masked_lm_prob_{args.masked_lm_prob}"
            f"_random_seed_{args.random_seed}_dupe_factor_{args.dupe_factor}"
            f"_shard_{args.n_training_shards}_test_split_{int(round(args.fraction_test_set * 100))}")


def directory_structure(working_dir, args):
    """Dict of the working directory's sub-folders (download, formatted, sharded, tfrecord)."""
    return {
        "download": os.path.join(working_dir, "download"),
        "formatted": os.path.join(working_dir, "formatted_one_article_per_line"),
        "sharded": os.path.join(working_dir, "sharded"),
        "tfrecord": os.path.join(working_dir, "tfrecord", tfrecord_folder_name(args)),
    }


# --- create_tfrecord_files: one worker process per core, each loads the tokenizer once -------------

_WORKER = {}


def _init_worker(vocab_file, do_lower_case):
    from biobert import cli, tokenization  # noqa: F401  (cli: TensorFlow imported without its start-up chatter)

    _WORKER["tokenizer"] = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=do_lower_case)


def _create_one(job):
    from biobert import pretraining_data

    input_file, output_file, params = job
    start = time.time()
    try:
        counts = pretraining_data.create_pretraining_data([input_file], output_file, _WORKER["tokenizer"], **params)
    except InputError as exc:
        return output_file, None, str(exc)
    return output_file, counts["instances"], f"{time.time() - start:.1f}s"


def create_tfrecord_files(args, dirs):
    """Run create_pretraining_data over every shard in parallel (args.n_processes workers).

    Existing TFRecord files are kept (they are written atomically, so they are complete).
    Returns the list of output files. Raises InputError if any shard failed.
    """
    if not args.vocab_file:
        raise InputError("--vocab_file is required for create_tfrecord_files")
    if not os.path.isfile(args.vocab_file):
        raise InputError("vocabulary file not found", path=args.vocab_file)
    params = dict(max_seq_length=args.max_seq_length, max_predictions_per_seq=args.max_predictions_per_seq,
                  masked_lm_prob=args.masked_lm_prob, short_seq_prob=args.short_seq_prob,
                  dupe_factor=args.dupe_factor, random_seed=args.random_seed,
                  do_whole_word_mask=bool(args.do_whole_word_mask))
    jobs, outputs = [], []
    splits = [("training", args.n_training_shards)]
    if args.fraction_test_set > 0:
        splits.append(("test", args.n_test_shards))
    for split, count in splits:
        for i in range(count):
            name = f"{args.dataset}_{split}_{i}"
            src = os.path.join(dirs["sharded"], args.dataset, split, name + ".txt")
            dst = os.path.join(dirs["tfrecord"], args.dataset, split, name + ".tfrecord")
            if not os.path.isfile(src):
                raise InputError("shard not found; run --action sharding with the same shard counts", path=src)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            outputs.append(dst)
            if os.path.exists(dst):
                continue
            # A different seed per shard, so shards do not share their random choices.
            job_params = dict(params, random_seed=args.random_seed + len(outputs) - 1 if args.seed_per_shard else args.random_seed)
            jobs.append((src, dst, job_params))
    print(f"creating {len(jobs)} TFRecord files ({len(outputs) - len(jobs)} already present) "
          f"with {args.n_processes} processes in {os.path.join(dirs['tfrecord'], args.dataset)}")
    failures = []
    if jobs:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(max(1, min(args.n_processes, len(jobs))), _init_worker,
                      (args.vocab_file, bool(args.do_lower_case))) as pool:
            for done, (output_file, instances, note) in enumerate(pool.imap_unordered(_create_one, jobs), 1):
                if instances is None:
                    failures.append(note)
                    print(f"FAILED {output_file}: {note}", file=sys.stderr)
                else:
                    print(f"[{done}/{len(jobs)}] wrote {output_file}: {instances} instances in {note}", flush=True)
    if failures:
        raise InputError(f"{len(failures)} shards failed:\n  " + "\n  ".join(failures))
    return outputs


def main(args):
    working_dir = args.working_dir or os.environ.get("BERT_PREP_WORKING_DIR")
    if not working_dir:
        raise InputError("set BERT_PREP_WORKING_DIR (or --working_dir) to the data root")
    for name in ("n_training_shards", "n_test_shards", "n_processes", "dupe_factor", "max_seq_length",
                 "max_predictions_per_seq"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name} must be positive, got {value}")
    if not 0.0 <= args.fraction_test_set < 1.0:
        raise InputError(f"--fraction_test_set must lie in [0, 1), got {args.fraction_test_set}")
    if not 0.0 < args.masked_lm_prob <= 1.0:
        raise InputError(f"--masked_lm_prob must lie in (0, 1], got {args.masked_lm_prob}")
    if args.action == "create_tfrecord_files":
        dirs = directory_structure(working_dir, args)   # the sharded folder does not depend on the counts
        for split, name in (("training", "n_training_shards"), ("test", "n_test_shards")):
            if getattr(args, name) is None:
                setattr(args, name, count_shards(dirs, args.dataset, split))
        if args.n_training_shards == 0:
            raise InputError("no training shards: run --action sharding first",
                             path=os.path.join(dirs["sharded"], args.dataset, "training"))
    dirs = directory_structure(working_dir, args)
    print(f"Working directory: {working_dir}\nAction: {args.action}\nDataset: {args.dataset}")

    if args.action == "download":
        from Downloader import Downloader

        Downloader(args.dataset, dirs["download"], local_dir=args.local_dir, base_url=args.base_url).download()

    elif args.action == "text_formatting":
        from PubMedTextFormatting import PubMedTextFormatting

        if not args.dataset.startswith("pubmed"):
            raise InputError(f"text_formatting supports the PubMed datasets, not {args.dataset!r}")
        subset = args.dataset.split("_", 1)[1]
        output = os.path.join(dirs["formatted"], f"{args.dataset}_one_article_per_line.txt")
        PubMedTextFormatting(os.path.join(dirs["download"], "pubmed", subset), output, recursive=True).merge()

    elif args.action == "sharding":
        from TextSharding import NLTKSegmenter, Sharding, read_training_sample

        if not args.dataset.startswith("pubmed"):
            raise InputError(f"sharding supports the PubMed datasets, not {args.dataset!r}")
        inputs = args.input_files.split(",") if args.input_files else [
            os.path.join(dirs["formatted"], f"{args.dataset}_one_article_per_line.txt")]
        prefix = os.path.join(dirs["sharded"], args.dataset, args.dataset)
        for path in inputs:
            if not os.path.isfile(path):
                raise InputError("input file not found (run --action text_formatting first)", path=path)
        derive_shard_counts(args, inputs)
        segmenter = NLTKSegmenter(train_text=read_training_sample(inputs))
        print(f"sentence segmentation: {segmenter.source}")
        result = Sharding(inputs, prefix, args.n_training_shards, args.n_test_shards, args.fraction_test_set,
                          segmenter=segmenter).run()
        remove_stale_shards(dirs, args.dataset, "training", args.n_training_shards)
        remove_stale_shards(dirs, args.dataset, "test", args.n_test_shards if "test" in result else 0)
        for split in ("training", "test"):
            if split in result:
                r = result[split]
                print(f"{split}: {r['articles']} articles, {r['sentences']} sentences in {len(r['files'])} shards")

    elif args.action == "create_tfrecord_files":
        create_tfrecord_files(args, dirs)


def build_parser():
    parser = argparse.ArgumentParser(description="Preprocessing for BioBERT pre-training (PubMed).")
    parser.add_argument("--action", required=True,
                        choices=["download", "text_formatting", "sharding", "create_tfrecord_files"],
                        help="download: fetch and verify; text_formatting: XML -> one article per line; "
                             "sharding: sentence-per-line shards; create_tfrecord_files: pre-training TFRecords")
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="Dataset to act on.")
    parser.add_argument("--working_dir", default=None,
                        help="Data root (default: the BERT_PREP_WORKING_DIR environment variable).")
    parser.add_argument("--local_dir", default=None,
                        help="download: copy from this local folder instead of the network "
                             "(default: env PUBMED_LOCAL_DIR / GOOGLE_PRETRAINED_WEIGHTS_DIR).")
    parser.add_argument("--base_url", default=None, help="download: PubMed listing URL (default: NCBI).")
    parser.add_argument("--input_files", default=None, help="sharding: comma-separated input files (no spaces).")
    parser.add_argument("--n_training_shards", type=int, default=None,
                        help="Number of training shards [sharding: one per 10000 training articles, 1 to 1472; "
                             "create_tfrecord_files: as many as sharding wrote].")
    parser.add_argument("--n_test_shards", type=int, default=None,
                        help="Number of test shards [as --n_training_shards, for the test articles].")
    parser.add_argument("--fraction_test_set", type=float, default=0.1,
                        help="Fraction (0..1) of the articles withheld for the test split.")
    parser.add_argument("--segmentation_method", default="nltk", choices=["nltk"], help="Sentence segmentation.")
    parser.add_argument("--n_processes", type=int, default=os.cpu_count() or 1,
                        help="Parallel processes for create_tfrecord_files.")
    parser.add_argument("--random_seed", type=int, default=12345, help="Random seed.")
    parser.add_argument("--seed_per_shard", type=int, default=0,
                        help="1: shard i uses random_seed + i (the original used one seed for all shards).")
    parser.add_argument("--dupe_factor", type=int, default=5, help="Times each shard is duplicated with new masks.")
    parser.add_argument("--masked_lm_prob", type=float, default=0.15, help="Masked LM probability.")
    parser.add_argument("--short_seq_prob", type=float, default=0.1, help="Probability of a shorter sequence.")
    parser.add_argument("--max_seq_length", type=int, default=512, help="Maximum sequence length.")
    parser.add_argument("--max_predictions_per_seq", type=int, default=20, help="Maximum masked tokens per sequence.")
    parser.add_argument("--do_lower_case", type=int, default=1, help="1: uncased (lower-case the text); 0: cased.")
    parser.add_argument("--do_whole_word_mask", type=int, default=0, help="1: mask whole words.")
    parser.add_argument("--vocab_file", default=None, help="WordPiece vocabulary file (a local path).")
    return parser


if __name__ == "__main__":
    arguments = build_parser().parse_args()
    arguments.do_lower_case = 1 if arguments.do_lower_case else 0
    try:
        main(arguments)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
