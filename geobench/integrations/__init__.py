"""Bridges to the engines the field scales out on (verl); each imports its engine, so import it only there."""
