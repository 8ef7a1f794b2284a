"""Factor judges: supervised CNNs that read every ground-truth factor from an image (``train.py`` trains one)."""
