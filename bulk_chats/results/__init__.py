"""The results: one row per input row, written as a workbook or CSV, put in place whole, and
readable by the owner only.
"""
