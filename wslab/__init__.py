"""wslab: a lab for tuning WebSocket performance.

Layers, from the bottom up (imports only point down): core (``traces``, ``analysis``,
``codecs``, ``config``), pipeline, run (simulator, live harness), tune, face (CLI,
notebook panels). See ``docs/architecture.md``.
"""

__version__ = "0.1.0"
