"""absl flags shared by the entry points (the original recipe's names and defaults)."""
from absl import flags


def define_common(dllog_path="/results/bert_dllog.json"):
    flags.DEFINE_string("bert_config_file", None, "The config json file of the pre-trained BERT model (Google's "
                        "bert_config.json or a Hugging Face config.json). Optional when --init_checkpoint is a "
                        "Hugging Face folder: its config.json is used.")
    flags.DEFINE_string("output_dir", None, "Where checkpoints, predictions and results are written. A checkpoint "
                        "already there is resumed.")
    flags.DEFINE_string("init_checkpoint", None, "Initial weights: a TF1 checkpoint (bert_model.ckpt, "
                        "model.ckpt-N, as Google/NGC/BioBERT ship them), a Hugging Face folder with "
                        "model.safetensors, or a checkpoint of this project. Weights only.")
    flags.DEFINE_string("dllog_path", dllog_path, "Filename of the dllogger-style JSON-lines run log.")
    flags.DEFINE_integer("save_checkpoints_steps", 1000, "How often to save the model checkpoint (the latest is kept).")
    flags.DEFINE_bool("horovod", False, "Accepted for compatibility with the original launch (mpirun ... --horovod). "
                      "Horovod does not build against TensorFlow 2.21; the same multi-process launch runs on "
                      "tf.distribute (MultiWorkerMirroredStrategy).")
    flags.DEFINE_bool("amp", True, "Mixed precision: float16 with dynamic loss scaling on GPUs; on CPUs with bfloat16 "
                      "arithmetic (AVX512_BF16, AMX, Arm BF16), bfloat16 matrix products in an otherwise float32 "
                      "model; other CPUs run float32, where bfloat16 would be emulated and slower "
                      "(BIOBERT_CPU_BF16=1/0 overrides).")
    flags.DEFINE_bool("use_xla", True, "Compile the training and inference steps with XLA (jit_compile).")
    flags.DEFINE_bool("do_prepare", False, "Accepted and ignored (the original scripts pass it).")
    flags.DEFINE_integer("seed", 12345, "Random seed for initialisation, dropout and data order.")


def define_finetuning(do_lower_case, train_batch_size, eval_batch_size, predict_batch_size, learning_rate,
                      num_train_epochs, max_seq_length, task_name, group_by_length=True):
    define_common()
    flags.DEFINE_string("task_name", task_name, "The name of the task to train.")
    flags.DEFINE_string("data_dir", None, "The input data dir (train/dev/test files of the task).")
    flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary the BERT model was trained on. Optional "
                        "when --init_checkpoint is a Hugging Face folder: its vocab.txt is used.")
    flags.DEFINE_bool("do_lower_case", do_lower_case, "Lower-case the input (True for uncased models).")
    flags.DEFINE_integer("max_seq_length", max_seq_length, "Maximum total input length after WordPiece "
                         "tokenization; longer inputs are truncated, shorter ones padded per batch.")
    flags.DEFINE_bool("do_train", False, "Whether to run training.")
    flags.DEFINE_string("export_dir", None, "Write the fine-tuned model (after training, or the --init_checkpoint "
                        "fine-tuned folder with no training) as a TensorFlow SavedModel here: serving_default "
                        "takes a batch of raw sentences (tokenized in the graph with tensorflow-text) and returns "
                        "entity spans (NER) or class probabilities (RE); label_map.json, vocab.txt and "
                        "bert_config.json beside it.")
    flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
    flags.DEFINE_bool("do_predict", False, "Whether to run the model in inference mode on the test set (or, with "
                      "--predict_file, on your own text).")
    flags.DEFINE_string("predict_file", None, "Predict on this file (implies --do_predict) instead of the test set "
                        "and write <output_dir>/predictions.jsonl, one record per input line in input order. Plain "
                        "text (one document a line) or JSON lines with \"text\" and an optional \"id\" (relation "
                        "extraction: with the chemical's and the gene's character spans, or the @CHEMICAL$/@GENE$ "
                        "masked form). Pass the fine-tuned output folder as --init_checkpoint: its label map, "
                        "vocabulary, casing and config are used.")
    flags.DEFINE_integer("train_batch_size", train_batch_size, "Training batch size per replica (GPU/process).")
    flags.DEFINE_integer("eval_batch_size", eval_batch_size, "Batch size for eval.")
    flags.DEFINE_integer("predict_batch_size", predict_batch_size, "Batch size for predict.")
    flags.DEFINE_float("learning_rate", learning_rate, "The initial learning rate for Adam (multiplied by the "
                       "number of workers).")
    flags.DEFINE_float("num_train_epochs", num_train_epochs, "Total number of training epochs to perform.")
    flags.DEFINE_float("warmup_proportion", 0.1, "Proportion of training to perform linear learning rate warmup "
                       "for. E.g., 0.1 = 10% of training.")
    flags.DEFINE_integer("iterations_per_loop", 100, "How many training steps between progress lines in the log "
                         "(in the original: steps per TPU loop).")
    flags.DEFINE_integer("num_accumulation_steps", 1, "Micro-batches accumulated into one optimizer step.")
    flags.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay (not on LayerNorm and bias).")
    flags.DEFINE_bool("group_by_length", group_by_length, "Sort the shuffled training rows by length within "
                      "windows of 64 batches, so that batches need little padding (a batch then holds rows of "
                      "similar length only). --nogroup_by_length keeps the plain shuffle, as Hugging Face's "
                      "Trainer does; for relation extraction each batch is then computed in up to 4 "
                      "length-sorted parts of at least 8 rows (the same loss and update, less padding).")
