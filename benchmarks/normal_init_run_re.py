"""run_re.py with the classifier's output_weights drawn as Hugging Face draws them: plain normal, stddev 0.02.

    python benchmarks/normal_init_run_re.py <run_re.py's flags>

run_re.py initialises ``output_weights`` [labels, hidden] as Google's run_classifier.py does,
``truncated_normal(stddev=0.02)``: draws beyond two standard deviations are redrawn, so no weight exceeds 0.04
in size and their spread is about 0.0176. The Hugging Face peer (benchmarks/peer_hf_chemprot.py,
``BertForSequenceClassification``) draws its classifier from a plain normal of stddev 0.02. Everything else
(model, loss, optimizer, schedule, precision, batches, dropout) is run_re.py's own. A tool for the ChemProt
side-by-side comparison in BENCHMARKS.md, not a run_re.py option.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert import cli  # noqa: E402  (first: quiet TensorFlow start-up)

import keras  # noqa: E402
from absl import app  # noqa: E402

from biobert import modeling  # noqa: E402


def use_normal_init():
    """Make every ClassifierHead built from now on draw its output_weights from a plain normal (stddev 0.02)."""
    modeling.ClassifierHead.output_initializer = keras.initializers.RandomNormal


if __name__ == "__main__":
    import run_re  # noqa: E402  (defines run_re.py's flags)

    use_normal_init()
    print("normal_init_run_re.py: classifier output_weights ~ normal(0, 0.02) (run_re.py: truncated normal)",
          flush=True)
    app.run(run_re.main)
