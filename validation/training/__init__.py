"""Small-scale re-validation of the precision laws (Kumar et al. 2024, arXiv 2411.04330).

Trains decoder-only transformers of ~0.1M-3M parameters on the CPU with fake-quantized
weights / activations / KV cache, post-training quantizes the final weights, fits
lawcore's forms to the runs and reports which trends hold.

Modules (torch is imported only by the training side, so a runs CSV can be re-analysed
without it):
- `quant`    number formats (intB, eXmY floats) and fake quantization with an STE.
- `model`    the decoder-only transformer with quantized linears and KV.
- `ptq`      round-to-nearest per-group post-training quantization of the weights.
- `data`     token sources: a seeded sparse Markov language with an exact entropy rate,
             and the byte-level text of Python's standard library.
- `train`    one run: train, evaluate held-out loss with and without PTQ.
- `sweep`    grids, the durable resumable runs CSV and the sweep loop.
- `runs`     reading and checking a runs CSV (torch-free).
- `analysis` fits and trend checks; `report` writes Markdown, PNG and CSV files.
"""
