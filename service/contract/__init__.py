"""The contract between training and service: everything both halves must agree on about a model artifact.

Needs numpy and pydantic only (no torch, onnxruntime, FastAPI or Pillow: ``tests/test_contract_imports.py``),
so the training half imports it to write artifacts and the service half to serve them.

    manifest      the manifest's schema and the latent layout of the ONNX files
    calibration   named factor values -> a latent vector, from a manifest's calibration
"""
