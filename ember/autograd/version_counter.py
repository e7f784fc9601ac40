"""A Tensor's version counter: how in-place edits of values saved for backward are caught.

The counter is a one-item list (the "box") shared by a tensor and its ``detach()``ed
copies; every in-place edit adds one.  A node that saves a tensor keeps the box and
the count it saw, and the engine compares them before the node's backward.  Most op
outputs are never saved nor edited in place, so the box is made on first use: until
then the tensor's ``_vbox`` slot holds None (one object less per recorded op).
"""

from __future__ import annotations


class VersionCounted:
    """Mixin for ``Tensor`` (which owns the ``_vbox`` slot): ``_version`` and ``_bump_version``."""

    __slots__ = ()

    @property
    def _version(self) -> list:
        """The version box, ``[count]``, made here if nothing needed it before."""
        box = self._vbox
        if box is None:
            box = self._vbox = [0]
        return box

    @_version.setter
    def _version(self, box: list) -> None:
        self._vbox = box

    def _bump_version(self) -> None:
        """Record an in-place change of ``data`` (for code that writes the array directly)."""
        self._version[0] += 1
