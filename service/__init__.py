"""Online half of disentangle: serves exported models with onnxruntime. Never imports torch or training."""
