"""The named choices a run takes, each defined once: the command line's options, the API's checks and the code
that acts on them read these (this module imports nothing, so ``posembed --help`` can list them).

- ``SCALES``: the matrix heatmap's colour scales (``auto`` is symlog for heavy-tailed tables, else linear);
- ``PROBE_PROTOCOLS``: the probes' protocols, the project's ``ridge`` and Wang & Chen 2020's code
  (``explorer.analysis.probes``); ``PROBE_PROTOCOL`` is the default. An analysis reads it from
  ``TableContext.options["probe_protocol"]``.
"""

SCALES = ("auto", "linear", "symlog")
PROBE_PROTOCOLS = ("ridge", "wang-chen")
PROBE_PROTOCOL = "ridge"
