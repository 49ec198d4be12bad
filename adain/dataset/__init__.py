"""Stylised datasets: a whole dataset re-rendered with random styles, reproducibly and at scale.

- ``sources.py``: the image readers (folder trees, parquet shards, Hub datasets of parquet),
  shared with training;
- ``assign.py``: each image's style and alpha as a pure function of ``(seed, relative path)``;
- ``plan.py``: the work (units of images, output names, shards by rank) and the checks made
  before anything is written;
- ``styles.py``: the style set, each style encoded once;
- ``images.py``: images decoded in DataLoader workers, and encoded for writing;
- ``shards.py``: output parquet shards (the source's columns, the stylised image, the style);
- ``manifest.py``: the record of every output (journal per rank, parts, merged manifest);
- ``resume.py``: what an earlier run finished, verified;
- ``run.py``: the loop: batches through the model, outputs written and recorded.

Nothing here is imported by ``import adain``; pyarrow is imported when parquet is read.
"""
