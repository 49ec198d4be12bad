"""Batch stylisation: expand inputs, plan output names, encode each style once, stylise each pair.

``plan()`` does every check that needs no model (option values, output names, nothing
overwritten by accident, and every input decoded once in full), so a bad batch fails before it
writes anything. ``run()`` then loads the model once, encodes each style once and yields one
record per output; with ``skip_existing`` a re-run finishes only the outputs that are missing.

Modules, each importing only those before it: ``config`` (:class:`BatchConfig` and the checks of
its values), ``planning`` (:func:`plan`: inputs, output names), ``running`` (:func:`run`,
:func:`save_preset`). Input discovery (:func:`expand_paths`) lives in :mod:`adain.inputs`, since
callers that run no batch use it too; it is re-exported here with the rest of the old surface.
"""

from __future__ import annotations

from adain.batch.config import BatchConfig as BatchConfig
from adain.batch.planning import MIN_SIDE as MIN_SIDE  # the smallest side plan() lets through
from adain.batch.planning import Job as Job
from adain.batch.planning import Plan as Plan
from adain.batch.planning import plan as plan
from adain.batch.running import run as run
from adain.batch.running import save_preset as save_preset
from adain.inputs import PRESET_SUFFIX as PRESET_SUFFIX
from adain.inputs import expand_paths as expand_paths
