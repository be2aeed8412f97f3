"""JSON from outside the process (stdin, a config file, the environment, a plugin's
stdout, a cache file), with a nesting limit.

``json.loads`` recurses once per level: a few thousand ``[`` raise RecursionError,
which nobody catches as a decoding failure, and a document just under the
interpreter's limit decodes but fails later, wherever it is encoded again (a
config handed to the next plugin, a cache entry). No CNI document needs more than
a handful of levels, so anything deeper than :data:`MAX_DEPTH` is refused here as
undecodable, with the ValueError ``json`` itself raises for bad text.
"""

from __future__ import annotations

import json

#: Levels of objects and arrays a document may nest (a config with a prevResult needs ~6).
MAX_DEPTH = 64


def loads(data: bytes | str) -> object:
    """``json.loads``, but a document nested deeper than MAX_DEPTH is a ValueError."""
    try:
        obj = json.loads(data)
    except RecursionError as exc:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    if nesting_depth(obj) > MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return obj


def nesting_depth(obj: object) -> int:
    """How many objects and arrays deep ``obj`` goes (0 for a scalar); no recursion."""
    deepest = 0
    pending = [(obj, 1)] if isinstance(obj, dict | list) else []
    while pending:
        value, depth = pending.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value
        pending.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest
