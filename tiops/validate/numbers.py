"""Numbers STIX 2.1 cannot hold: integers beyond the signed 54-bit range, NaN and Infinity.

STIX 2.1 section 2.16 limits integers to -(2^53)+2 .. 2^53-2 so that every JSON
reader holds them exactly; NaN and Infinity are not JSON numbers at all (RFC 8259
section 6). YAML reads ``.nan``, ``.inf`` and integers of any size, and compile's
JSON writer refuses integers beyond 64 bits, so they are findings at the value.
"""

from __future__ import annotations

from tiops.codes import make_finding
from tiops.findings import Finding
from tiops.limits import number_problems
from tiops.load import IntelObject


def check_numbers(obj: IntelObject) -> list[Finding]:
    return [
        make_finding("TI220", f"{'.'.join(map(str, path))}: {reason}", obj.location(*path), stix_id=obj.id)
        for path, reason in number_problems(obj.data)
    ]
