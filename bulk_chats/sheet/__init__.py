"""Reading: a CSV or Excel file becomes a `Sheet` of raw cells, each with its row number.

The workbook reader runs in a child process held to a memory and time limit.
"""
