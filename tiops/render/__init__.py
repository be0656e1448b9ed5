"""Renderers that turn tiops data (findings, bundles, reports) into text for people and tools."""

from __future__ import annotations
