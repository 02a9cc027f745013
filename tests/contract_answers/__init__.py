"""Recorded answers of the JSON API (status + normalised body), the proof that a contract change kept behaviour."""
