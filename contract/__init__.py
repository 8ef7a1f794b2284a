"""The contract between training and service: everything both halves must agree on about a model artifact.

Needs numpy and pydantic only (no torch, onnxruntime, FastAPI or Pillow: ``tests/test_contract_imports.py``),
so the training half imports it to write artifacts and the service half to serve them.

    manifest      the manifest's schema and the latent layout of the ONNX files
    calibration   named factor values -> a latent vector, from a manifest's calibration
    images        the one preparation of a picture into a model input, and of model outputs into 8-bit pixels
    ranges        the one default range of a latent dim: /traverse's, the page's sliders', the model card's
    grid          the one tiling of images into a grid
"""
