"""Save the DistilBERT-base twin (random weights, a real tokenizer) as a model directory.

    python bench/save_twin.py TOKENIZER_DIR OUT_DIR

The pipeline can then evaluate it like any local model: same shapes, tokens and cost as
distilbert-base-uncased-finetuned-sst-2-english, for timing runs without the Hub.
"""

import sys

from compare_loops import load

if __name__ == "__main__":
    tokenizer_dir, out_dir = sys.argv[1:3]
    model, tokenizer = load(tokenizer_dir, twin=True, device="cpu")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    print(f"saved the DistilBERT-base twin to {out_dir}")
