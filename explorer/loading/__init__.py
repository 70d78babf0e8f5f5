"""From spec strings to position terms: parsing a spec (``spec``), loading one through its provider (``load``),
and many at once: revision series and spec files (``series``)."""
