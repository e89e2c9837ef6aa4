"""BioBERT for TensorFlow 2: pre-training on PubMed and biomedical fine-tuning (NER, RE)."""
