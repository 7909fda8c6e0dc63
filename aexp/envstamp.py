"""What a set of environment variables holds now, as a value to compare: the key of a cache
whose entry was computed from those variables (the settings' overrides, the actor).

    stamp = env_stamp(("USER", "LOGNAME"))   # equal stamps: the variables hold the same values

Reading a variable through `os.environ.get` costs about 0.7 us (the Mapping protocol, the key
encoded, the value decoded); a cache checked once per job attempt against twenty variables
would spend more on that than on what it saves. CPython's `os.environ` keeps the process's
environment in a dict of encoded keys and values (`os._Environ._data`, which every change made
through `os.environ` updates; `os.putenv` alone changes neither it nor what `os.environ.get`
answers): a stamp looks the raw values up there, about twenty times cheaper, and compares them
undecoded. Elsewhere (another Python, `os.environ`
replaced by a plain mapping) the values are read through `os.environ.get`: the same stamp.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

# {names: their encoded keys}: a caller passes the same tuple each time.
_keys: dict[tuple[str, ...], tuple[Any, ...]] = {}


def env_stamp(names: Sequence[str]) -> tuple[Any, ...]:
    """The values of the environment variables `names` as they are now, one per name (None for
    one unset), in a form meant for comparison only: two stamps of the same `names` are equal
    exactly when every variable holds the same value (or is unset in both)."""
    environ = os.environ
    data = getattr(environ, "_data", None)
    encode = getattr(environ, "encodekey", None)
    if type(data) is not dict or encode is None:
        return tuple(environ.get(name) for name in names)
    key = names if type(names) is tuple else tuple(names)
    encoded = _keys.get(key)
    if encoded is None:
        encoded = _keys[key] = tuple(encode(name) for name in key)
    return tuple(map(data.get, encoded))


__all__ = ["env_stamp"]
