"""What the one-click scripts (biobert/scripts/*.sh, through common.sh's bb_py) ask of Python: their per-task
and per-phase defaults, read from configurations.yml, where they are written down once; their -h texts, built
from the same values; and a benchmark run's throughput and latency, read from its logs. Needs no TensorFlow.

    python -m biobert.launch settings finetune TASK | settings pretrain PHASE    shell assignments, for eval
    python -m biobert.launch usage finetune TASK | pretrain PHASE | benchmark train|inference | inference
    python -m biobert.launch perf train|infer FILE... [--row SUMMARY PRECISION SEQ BATCH]
"""
import argparse
import json
import os
import re
import shlex
import sys

CONFIGURATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configurations.yml")
FINETUNING_DATA_VARS = {"run_ner.py": "BC5CDR_DATA", "run_re.py": "CHEMPROT_DATA"}   # env var naming the folder


def configurations():
    """configurations.yml with every value as written (3.125e-6 stays '3.125e-6', 10.0 stays '10.0')."""
    import yaml

    with open(CONFIGURATIONS, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=yaml.BaseLoader)


def finetuning_settings(task):
    """The one-click fine-tuning script's facts and defaults for ``task`` (ner_bc5cdr-chem, ...)."""
    tasks = configurations()["finetuning"]
    if task not in tasks:
        *others, last = tasks
        raise SystemExit(f"error: unknown task '{task}' (expected {', '.join(others)} or {last})")
    c, inference = tasks[task], configurations()["inference"]
    return dict(TASK_TAG=task.replace("-", "_"), ENTRY_NAME=c["entry_point"], TASK_NAME=c["task_name"],
                DATA_VAR=FINETUNING_DATA_VARS[c["entry_point"]], DATA_SUBDIR=c["data_dir"].removeprefix("data/"),
                DEF_BS=c["train_batch_size"], DEF_LR=c["learning_rate"], DEF_CASED=c["cased"],
                DEF_PRECISION=c["precision"], DEF_SEQ=c["max_seq_length"], DEF_MODEL=c["bert_model"],
                DEF_EVAL_BS=c["eval_batch_size"], DEF_EPOCHS=c["epochs"], INFER_BS=inference["batch_size"],
                INFER_SEQ=inference["max_seq_length"][task])


def pretraining_settings(phase):
    """The pre-training script's sequence length, masked positions and argument defaults for phase 1 or 2."""
    phases = configurations()["pretraining"]
    if f"phase_{phase}" not in phases:
        raise SystemExit(f"error: unknown pre-training phase '{phase}'")
    c = phases[f"phase_{phase}"]
    return dict(PT_SEQ=c["max_seq_length"], PT_MAX_PRED=c["max_predictions_per_seq"], PT_BS=c["train_batch_size"],
                PT_LR=c["learning_rate"], PT_CASED=c["cased"], PT_PRECISION=c["precision"],
                PT_WARM=c["warmup_steps"], PT_STEPS=c["train_steps"],
                PT_ACC=c["num_accumulation_steps"], PT_SAVE=c["save_checkpoint_steps"], PT_EVAL=c["eval_batch_size"])


# ----------------------------------------------------------------------------------------------------------
# -h texts

GPU_ARGS = {"use_xla": "true | false [true with GPUs, false on CPU]",
            "num_gpu": "processes; > 1 launches mpirun + --horovod [GPUs listed by nvidia-smi, else 1]"}


def finetuning_usage(task):
    s = finetuning_settings(task)
    data = f"{s['DATA_VAR']} [$DATA_ROOT/{s['DATA_SUBDIR']}]"
    if s["TASK_NAME"] == "chemprot":
        what = ("Builds train/dev/test.tsv from the original ChemProt corpus when train.tsv is missing\n"
                "(data/ChemProtTextFormatting.py), fine-tunes run_re.py, then prints the micro P/R/F1 of\n"
                "biobert/re_eval.py (also saved to <output_dir>/test_results.txt).")
        data += ",\nCHEMPROT_CORPUS [$DATA_ROOT/biobert/ChemProt_Corpus]"
    else:
        what = (f"Fine-tunes run_ner.py on BC5CDR-{task.removeprefix('ner_bc5cdr-')} (train+devel for training, "
                "devel for eval, test for\nprediction) and prints the conlleval summary of the test set.")
    return f"""Usage: bash biobert/scripts/{task}.sh [init_checkpoint] [train_batch_size] [learning_rate]
         [cased] [precision] [use_xla] [num_gpu] [seq_length] [bert_model] [eval_batch_size] [epochs]

{what}

Positional arguments [defaults]:
  1 init_checkpoint   TF1/TF2 checkpoint or Hugging Face folder
                      [<results>/biobert_tf_<uncased|cased>_<bert_model>/model.ckpt]
  2 train_batch_size  per-process batch size [{s['DEF_BS']}]
  3 learning_rate     [{s['DEF_LR']}]
  4 cased             true | false [{s['DEF_CASED']}]   (false: uncased vocabulary, --do_lower_case=true)
  5 precision         fp16 -> --amp, anything else -> --noamp [{s['DEF_PRECISION']}]
  6 use_xla           {GPU_ARGS['use_xla']}
  7 num_gpu           {GPU_ARGS['num_gpu']}
  8 seq_length        [{s['DEF_SEQ']}]
  9 bert_model        base | large [{s['DEF_MODEL']}]
 10 eval_batch_size   eval and predict batch size [{s['DEF_EVAL_BS']}]
 11 epochs            [{s['DEF_EPOCHS']}]

Environment: DATA_ROOT, BERT_DIR, VOCAB_FILE, BERT_CONFIG,
{data}, RESULTS_DIR, OUTPUT_DIR, PYTHON, DRY_RUN=1 (print commands only).
Output: <results>/tf_bert_biobert_{s['TASK_TAG']}_<bert_model>_<precision>_gbs<N>_<yymmddHHMMSS>."""


def pretraining_usage(phase):
    s = pretraining_settings(phase)
    if phase == "1":
        usage = ("[train_batch_size]\n         [learning_rate] [cased] [precision] [use_xla] [num_gpu] [warmup_steps] "
                 "[train_steps]\n         [num_accumulation_steps]")
        first, init_note = [], (" Init: INIT_CHECKPOINT [$BERT_DIR/bert_model.ckpt]\n(a Hugging Face folder works "
                                "too; config and vocab come from beside it).")
    else:
        usage = ("[init_checkpoint]\n         [train_batch_size] [learning_rate] [cased] [precision] [use_xla] "
                 "[num_gpu] [warmup_steps]\n         [train_steps] [num_accumulation_steps]")
        first = [("init_checkpoint", "phase-1 checkpoint, or a folder (its latest checkpoint is taken)\n"
                  + " " * 28 + "[latest checkpoint in <results>/biobert_phase_1]")]
        init_note = " Config: the bert_config.json beside the checkpoint (BERT_CONFIG overrides)."
    rows = first + [("train_batch_size", f"per-process batch size [{s['PT_BS']}]"),
                    ("learning_rate", f"[{s['PT_LR']}]"), ("cased", f"true | false [{s['PT_CASED']}]"),
                    ("precision", f"fp16 -> --amp, anything else -> --noamp [{s['PT_PRECISION']}]"),
                    *GPU_ARGS.items(),
                    ("warmup_steps", f"[{s['PT_WARM']}]"), ("train_steps", f"[{s['PT_STEPS']}]"),
                    ("num_accumulation_steps", f"[{s['PT_ACC']}]"), ("save_checkpoint_steps", f"[{s['PT_SAVE']}]"),
                    ("eval_batch_size", f"[{s['PT_EVAL']}]")]
    arguments = "\n".join(f"{n:3d} {name:<23} {text}" for n, (name, text) in enumerate(rows, start=1))
    return f"""Usage: bash biobert/scripts/run_pretraining_pubmed_base_phase_{phase}.sh {usage} [save_checkpoint_steps] [eval_batch_size]

Positional arguments [defaults]:
{arguments}

Data: $DATA_ROOT/tfrecord/lower_case_<0|1>_seq_len_{s['PT_SEQ']}_max_pred_{s['PT_MAX_PRED']}_masked_lm_prob_0.15_random_seed_12345_
dupe_factor_5_shard_<N>_test_split_10/pubmed_baseline/{{training,test}}, N the one such folder's
(the data script derives it from the corpus size) or NUM_SHARDS
(INPUT_FILES_DIR / EVAL_FILES_DIR override).{init_note} Checkpoints: CHECKPOINTS_DIR [<results>/biobert_phase_{phase}].
Log: <results>/tf_bert_bio_1n_phase{phase}_cased_<cased>_<precision>_gbs<N>.<yymmddHHMMSS>.log.
Environment: DATA_ROOT, BERT_DIR, BERT_CONFIG, RESULTS_DIR [./results], MAX_EVAL_STEPS [100 eval batches],
PYTHON, DRY_RUN=1 (print commands only)."""


def inference_usage(_):
    tasks, c = configurations()["finetuning"], configurations()["inference"]
    seq = ", ".join(f"{task} {c['max_seq_length'][task]}" for task in tasks)
    return f"""Usage: bash biobert/scripts/run_biobert_finetuning_inference.sh [task] [init_checkpoint]
         [bert_model] [cased] [precision] [use_xla] [batch_size]

Runs --do_eval and --do_predict of run_ner.py / run_re.py with a fine-tuned checkpoint and
reports F1, precision and recall (conlleval for NER, biobert/re_eval.py for ChemProt).

Positional arguments [defaults]:
  1 task              {" | ".join(tasks)} [{next(iter(tasks))}]
  2 init_checkpoint   fine-tuned checkpoint or Hugging Face folder
                      [<results>/biobert_tf_<uncased|cased>_<bert_model>/model.ckpt-4340]
  3 bert_model        base | large [base]
  4 cased             true | false [false]
  5 precision         fp16 -> --amp, anything else -> --noamp [fp16]
  6 use_xla           {GPU_ARGS['use_xla']}
  7 batch_size        eval and predict batch size [{c['batch_size']}]
Sequence length: {seq} (SEQ_LENGTH overrides).

Environment: DATA_ROOT, BERT_DIR, VOCAB_FILE, BERT_CONFIG, BC5CDR_DATA, CHEMPROT_DATA,
CHEMPROT_CORPUS, RESULTS_DIR, OUTPUT_DIR, PYTHON, DRY_RUN=1 (print commands only).
Output: <results>/tf_bert_biobert_<task>_inference_<bert_model>_<precision>_<yymmddHHMMSS>.

Your own text: PREDICT_FILE=FILE (plain text, one document a line, or JSON lines with "text" and an
optional "id"; for rel_chemprot JSON lines with the "chemical" and "gene" character spans, or the
@CHEMICAL$/@GENE$ masked form) and init_checkpoint = a fine-tuned output folder: runs
--do_predict --predict_file instead and writes <output>/predictions.jsonl. The folder's own
vocabulary, config and casing are used (bert_model and cased are then not needed)."""


def benchmark_usage(mode):
    tasks = " | ".join(configurations()["finetuning"])
    if mode == "train":
        args, env = "[task] [num_gpu] [bert_model] [cased]", "BENCH_EPOCHS [2.0], BENCH_SEQ_LENGTHS"
        what = """Fine-tunes for BENCH_EPOCHS epochs from the Google BERT checkpoint for every
  seq_length in {128, 512} x train_batch_size in {8, 32, 64} x precision in {fp16, fp32}
(fp16 runs with --amp --use_xla, fp32 with --noamp --nouse_xla) and prints, per run,
  Throughput Average (sentences/sec) = X   and the latency p50/p90/p95/p99/p100 lines
read from the run's log and dllogger file, then the summary table."""
        positional = [("num_gpu", GPU_ARGS["num_gpu"])]
        output = ("training_benchmark_<bert_model>_<cased|uncased>_num_gpu_<N>_<yymmddHHMMSS>/\nwith one folder per "
                  "run and the summary <task>_training_benchmark_bert_<bert_model>_gpu_<N>.log.")
    else:
        args, env = "[task] [bert_model] [cased]", "BENCH_SEQ_LENGTHS"
        what = """Runs --do_eval/--do_predict for every
  seq_length in {128, 512} x batch_size in {8, 32, 64} x {--amp with XLA, --noamp without XLA}
and prints, per run, `Throughput Average (sentences/sec) = X` and the latency
p50/p90/p95/p99/p100 lines read from the run's log and dllogger file, then the summary table."""
        positional = []
        output = ("inference_benchmark_<bert_model>_<cased|uncased>_<yymmddHHMMSS>/\nwith one folder per run and the "
                  "summary <task>_inference_benchmark_bert_<bert_model>.log.")
    rows = [("task", f"{tasks} [ner_bc5cdr-chem]")] + positional + [("bert_model", "base | large [base]"),
                                                                     ("cased", "true | false [false]")]
    arguments = "\n".join(f"  {n} {name:<11} {text}" for n, (name, text) in enumerate(rows, start=1))
    return f"""Usage: bash biobert/scripts/biobert_finetune_{mode}_benchmark.sh {args}

{what}

Positional arguments [defaults]:
{arguments}

Environment: {env} ["128 512"], BENCH_BATCH_SIZES ["8 32 64"],
BENCH_PRECISIONS ["fp16 fp32"], INIT_CHECKPOINT [$BERT_DIR/bert_model.ckpt], DATA_ROOT,
BERT_DIR, VOCAB_FILE, BERT_CONFIG, BC5CDR_DATA, CHEMPROT_DATA, RESULTS_DIR, PYTHON, DRY_RUN=1.
Output: <results>/tf_bert_biobert_<task>_{output}"""


# ----------------------------------------------------------------------------------------------------------
# Benchmark figures from a run's logs

NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
THROUGHPUT_LINE = re.compile(r"Throughput Average \(sentences/sec\)\s*=\s*" + NUMBER)
LATENCY_LINE = re.compile(r"Latency Confidence Level (\d+) \(ms\)\s*=\s*" + NUMBER)
PERCENTILE = re.compile(r"(?<![0-9])(50|90|95|99|100)(?![0-9])")
PERCENTILES = (50, 90, 95, 99, 100)


def read_performance(mode, paths):
    """(throughput, {percentile: latency ms}) of one run from its log and dllogger files (missing files skipped).

    DLLL lines count first: any numeric data key holding "throughput", or "latency" and a percentile
    (latency_p50_ms, ...). Training logs its throughput per window, so ``train`` averages the non-zero
    ``*train*`` values; ``infer`` takes the last value not about training. Lines in the original's wording
    ("Throughput Average (sentences/sec) = X") are the fallback.
    """
    logged, printed, latency, printed_latency = [], [], {}, {}
    for path in paths:
        if not os.path.isfile(path):
            continue
        with open(path, errors="replace") as handle:
            for line in handle:
                if "DLLL " in line:
                    for key, value in dllog_numbers(line):
                        if "throughput" in key:
                            logged.append((key, value))
                        elif "latency" in key and PERCENTILE.search(key):
                            latency[int(PERCENTILE.search(key).group(1))] = value
                    continue
                if THROUGHPUT_LINE.search(line):
                    printed.append(float(THROUGHPUT_LINE.search(line).group(1)))
                if LATENCY_LINE.search(line):
                    match = LATENCY_LINE.search(line)
                    printed_latency[int(match.group(1))] = float(match.group(2))
    if mode == "train":
        picks = [v for k, v in logged if "train" in k and v > 0]
        throughput = sum(picks) / len(picks) if picks else (printed[0] if printed else None)
    else:
        picks = [v for k, v in logged if "train" not in k]
        throughput = picks[-1] if picks else (printed[-1] if printed else None)
    if throughput is None and logged:
        throughput = logged[-1][1]
    return throughput, {**printed_latency, **latency}


def dllog_numbers(line):
    """(lower-case key, value) of the numeric data of one DLLL line; nothing for a line that is not JSON."""
    try:
        record = json.loads(line.split("DLLL ", 1)[1])
    except ValueError:
        return []
    data = record.get("data") if isinstance(record, dict) else None
    if not isinstance(data, dict):
        return []
    return [(k.lower(), float(v)) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def performance_lines(throughput, latency):
    lines = ["Throughput Average (sentences/sec) = %s" % ("%.2f" % throughput if throughput is not None else "n/a")]
    return lines + ["Latency Confidence Level %d (ms) = %.2f" % (p, latency[p]) for p in PERCENTILES if p in latency]


def summary_row(precision, seq_length, batch, throughput, latency):
    """One tab-separated row of a benchmark summary: the run, its throughput, then latency p50 ... p100."""
    values = [throughput] + [latency.get(p) for p in PERCENTILES]
    return "\t".join([precision, seq_length, batch] + ["n/a" if v is None else "%.2f" % v for v in values]) + "\n"


# ----------------------------------------------------------------------------------------------------------

def main(argv):
    parser = argparse.ArgumentParser(prog="python -m biobert.launch", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("settings", "usage"):
        sub = commands.add_parser(name)
        sub.add_argument("kind", choices=("finetune", "pretrain", "benchmark", "inference") if name == "usage" else
                         ("finetune", "pretrain"))
        sub.add_argument("which", nargs="?" if name == "usage" else None)
    perf = commands.add_parser("perf")
    perf.add_argument("mode", choices=("train", "infer"))
    perf.add_argument("files", nargs="*")
    perf.add_argument("--row", nargs=4, metavar=("SUMMARY", "PRECISION", "SEQ", "BATCH"),
                      help="also append the run's row to the summary file SUMMARY")
    args = parser.parse_args(argv)
    if args.command == "settings":
        values = (finetuning_settings if args.kind == "finetune" else pretraining_settings)(args.which)
        print("\n".join(f"{key}={shlex.quote(value)}" for key, value in values.items()))
    elif args.command == "usage":
        print({"finetune": finetuning_usage, "pretrain": pretraining_usage, "benchmark": benchmark_usage,
               "inference": inference_usage}[args.kind](args.which))
    else:
        throughput, latency = read_performance(args.mode, args.files)
        print("\n".join(performance_lines(throughput, latency)))
        if args.row:
            with open(args.row[0], "a") as summary:
                summary.write(summary_row(*args.row[1:], throughput, latency))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
