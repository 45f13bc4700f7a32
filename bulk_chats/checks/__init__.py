"""Validation: every rule of the input checked offline, on whole columns, and the verdict
handed on as frozen records.
"""
