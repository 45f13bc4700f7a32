"""The HelpCrunch REST API: the client, its typed answers, the one rate limiter and the one
retry policy. The only place httpx is seen.
"""
