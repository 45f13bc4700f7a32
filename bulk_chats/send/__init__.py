"""Sending: the worker pool, new chats and their messages, changes of chats, what a lost
answer did, and a run told to stop.
"""
