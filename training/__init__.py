"""Offline half of disentangle: datasets with factors, the VAE family, training, evaluation and export."""
