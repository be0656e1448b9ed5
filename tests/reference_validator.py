"""Every bundle the test suite compiles, checked by the OASIS reference validator (stix2-validator).

tests/conftest.py installs :class:`BundleWatch` for the whole session: each bundle tiops writes
to a file (``tiops.compile._replacing``, which every bundle file goes through) or serialises
in memory (``serialize_bundle``) is split into its object lines, and each distinct line is
kept with the test that first compiled it. When the session ends every kept object is given to
``stix2validator.validate_instance``; an object it finds invalid fails the run, naming the
object and the test. Objects are checked once however many bundles hold them (most tests
compile the same example intel again and again), and by default only the first few of each
shape: ``TIOPS_TEST_REFERENCE_VALIDATOR=all`` checks every distinct object.

Bundles compiled by a ``tiops`` subprocess are not seen here; the in-process commands and
library calls the suite makes are.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

# Objects of one shape the session check gives the reference validator (BundleWatch.invalid_objects).
PER_SHAPE = 5
# Set to "all" to give it every distinct object instead (a few minutes more).
EVERY_OBJECT_SWITCH = "TIOPS_TEST_REFERENCE_VALIDATOR"

# How a bundle file starts and ends (tiops.compile): one object per line between them.
_HEAD_END = b'"objects":[\n'
_LINE_SEPARATOR = b",\n"


class BundleWatch:
    """Collects the distinct objects of the bundles compiled while it is installed."""

    def __init__(self) -> None:
        self.objects: dict[bytes, tuple[bytes, str]] = {}  # line digest -> (line, first test)
        self.bundles = 0
        self._undo: list[Callable[[], None]] = []
        self._paused = 0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Bundles written meanwhile are not kept: for a test that writes hand-made objects
        through tiops.compile's writer, which are no compiled intel."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def install(self) -> None:
        import tiops.compile as compile_module
        import tiops.pipeline as pipeline_module
        from tiops.inputs import read_regular_file

        replacing = compile_module._replacing
        serialize = compile_module.serialize_bundle
        keep = self.keep

        @contextlib.contextmanager
        def watched_replacing(target: Path) -> Iterator[BinaryIO]:
            with replacing(target) as stream:
                yield stream
            # A bundle streamed to a pipe or a device (-o /dev/stdout) cannot be read back: /dev/zero never ends.
            written = read_regular_file(Path(target), follow_links=True)
            if written is not None:
                keep(written)

        def watched_serialize(objects: Any) -> bytes:
            bundle = serialize(objects)
            keep(bundle)
            return bundle

        replaced: tuple[tuple[Any, str, Any], ...] = ((compile_module, "_replacing", watched_replacing),
                                                      (compile_module, "serialize_bundle", watched_serialize),
                                                      (pipeline_module, "serialize_bundle", watched_serialize))
        for module, name, value in replaced:
            self._undo.append(functools.partial(setattr, module, name, getattr(module, name)))
            setattr(module, name, value)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def keep(self, bundle: bytes) -> None:
        if self._paused:
            return
        start = bundle.find(_HEAD_END)
        if start < 0 or not bundle.startswith(b'{"id":"bundle--'):
            return  # not a bundle tiops wrote (a test wrote something else through the same path)
        self.bundles += 1
        body_end = bundle.rfind(b"\n]")
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").removesuffix(" (call)")
        for line in bundle[start + len(_HEAD_END):body_end].split(_LINE_SEPARATOR):
            if line:
                self.objects.setdefault(hashlib.sha256(line).digest(), (line, test))

    def invalid_objects(self, *, every_object: bool = False) -> list[str]:
        """One line per object stix2-validator finds invalid: the object, its errors and the test.

        The reference validator takes a few milliseconds an object, and the suite compiles
        about 40,000 distinct ones (most of them real datasets imported from the corpora):
        unless ``every_object``, the first :data:`PER_SHAPE` objects of each shape (type,
        property names, extension ids: what tiops adds or drops shows in it) are checked,
        about 1,400 objects.
        """
        from stix2validator import ValidationOptions, validate_instance

        options = ValidationOptions(version="2.1")
        problems = []
        per_shape: dict[tuple[Any, ...], int] = {}
        for line, test in self.objects.values():
            instance = orjson.loads(line)
            if not every_object:
                shape = (instance.get("type"), tuple(sorted(instance)), tuple(sorted(instance.get("extensions") or ())))
                seen = per_shape[shape] = per_shape.get(shape, 0) + 1
                if seen > PER_SHAPE:
                    continue
            result = validate_instance(instance, options)
            if not result.is_valid:
                errors = "; ".join(str(error) for error in result.errors)
                problems.append(f"{instance.get('id')} (compiled by {test}): {errors}")
        return problems
