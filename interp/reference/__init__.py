"""The offline reference model: corpus generator, tokenizer, training, weights, tasks."""
