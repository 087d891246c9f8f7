"""Corpora the analyzers run on: the deterministic synthetic generator."""

from analyzer_runtime.corpus.synthetic import SyntheticTrack, generate_tracks

__all__ = ["SyntheticTrack", "generate_tracks"]
