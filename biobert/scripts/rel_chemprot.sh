#!/bin/bash
# Fine-tune BioBERT for ChemProt relation extraction, then score the test set with re_eval.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
Usage: bash biobert/scripts/rel_chemprot.sh [init_checkpoint] [train_batch_size] [learning_rate]
         [cased] [precision] [use_xla] [num_gpu] [seq_length] [bert_model] [eval_batch_size] [epochs]

Builds train/dev/test.tsv from the original ChemProt corpus when train.tsv is missing
(data/ChemProtTextFormatting.py), fine-tunes run_re.py, then prints the micro P/R/F1 of
biobert/re_eval.py (also saved to <output_dir>/test_results.txt).

Positional arguments [defaults]:
  1 init_checkpoint   TF1/TF2 checkpoint or Hugging Face folder
                      [<results>/biobert_tf_<uncased|cased>_<bert_model>/model.ckpt]
  2 train_batch_size  per-process batch size [8]
  3 learning_rate     [1.5e-6]
  4 cased             true | false [false]   (false: uncased vocabulary, --do_lower_case=true)
  5 precision         fp16 -> --amp, anything else -> --noamp [fp16]
  6 use_xla           true | false [true with GPUs, false on CPU]
  7 num_gpu           processes; > 1 launches mpirun + --horovod [GPUs listed by nvidia-smi, else 1]
  8 seq_length        [512]
  9 bert_model        base | large [base]
 10 eval_batch_size   eval and predict batch size [16]
 11 epochs            [3.0]

Environment: DATA_ROOT, BERT_DIR, VOCAB_FILE, BERT_CONFIG,
CHEMPROT_DATA [$DATA_ROOT/biobert/chemprot-data_treeLSTM], CHEMPROT_CORPUS
[$DATA_ROOT/biobert/ChemProt_Corpus], RESULTS_DIR, OUTPUT_DIR, PYTHON, DRY_RUN=1.
Output: <results>/tf_bert_biobert_rel_chemprot_<bert_model>_<precision>_gbs<N>_<yymmddHHMMSS>.
USAGE
}

bb_maybe_usage "$@"
bb_finetune_main rel_chemprot "$@"
