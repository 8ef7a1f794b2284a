"""The contract between training and service: everything both halves must agree on about a model artifact.

Needs numpy and pydantic only (no torch, onnxruntime, FastAPI or Pillow: ``tests/test_contract_imports.py``),
so the training half imports it to write artifacts and the service half to serve them.

    manifest      the manifest's schema, the artifact's file names, the latent layout (its prior, the
                  reconstruction latent), the active-dimension rule, the objective/architecture/likelihood names
    tensors       the ONNX files' tensor names, and an encoder's outputs for a layout
    calibration   named factor values -> a latent vector, from a manifest's calibration
    images        the one preparation of a picture into a model input, and of model outputs into 8-bit pixels
    ranges        the one default range of a latent dim: /traverse's, the page's sliders', the model card's
    bounds        the bounds a latent must lie within to be decoded, derived from the artifact
    grid          the one tiling of images into a grid
"""
