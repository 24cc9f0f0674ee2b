"""One renderer module per export target; ``wslab.tune.export`` is the public entry point.

What lives here: nothing but the package marker. Each ``<target>`` module turns a
:class:`~wslab.config.TuningConfig` into ``{filename: text}`` without touching the disk;
``_common`` holds what they share. Writing files, target names and errors for unknown
targets belong to ``wslab/tune/export.py``.
"""
