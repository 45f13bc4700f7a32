"""The jobs start to end (validate, import, update, close) and what they share: the
session, the plan, the resume, Ctrl-C.
"""
