"""What a run needs from its surroundings: the environment variables posembed reads (``environment``), size
limits (``limits``), atomic output (``output``), signals (``interrupts``) and every line on stderr
(``console``)."""
