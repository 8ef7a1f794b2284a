"""Disentanglement metrics and latent statistics, computed in numpy on codes drawn from a factor dataset.

The supervised metrics follow disentanglement_lib (Locatello et al. 2019) and name their definition and
settings in every result's ``as_dict()``; ``suite.evaluate_representation`` runs them all with their defaults.
"""
