"""The journal: a durable SQLite record of what every run sent and what came of it, so a
killed run resumes and nothing is sent twice.
"""
