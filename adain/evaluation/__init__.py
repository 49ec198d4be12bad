"""Measuring stylisations the way papers do: content and style losses, LPIPS, FID and ArtFID.

Modules, each importing only those before it:

- ``feature_metrics``: content losses (relu4_1, relu4_2) and style losses (mean/std as in the
  AdaIN paper's Fig. 3, Gram as in Gatys et al.), measured with the model's own encoder;
- ``frechet``: Gaussian statistics of feature sets and the Fréchet distance between them;
- ``networks``: the LPIPS network and the Inception network of ArtFID, built from weight files;
- ``weights``: where those weight files come from (a local folder or a Hub repository);
- ``harness``: content x style pairs through one or more models and transfers, into a JSON
  report and a table (``adain evaluate``, and the training loop's validation).
"""
