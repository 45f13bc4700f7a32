"""A local stand-in for the HelpCrunch REST API, for trying bulk-chats without an account
and for end-to-end, load and fault tests.

    with run_in_thread(SandboxConfig(rate=600, faults=Faults(seed=7, drop_after=0.1))) as sb:
        ...  # point a client at sb.base_url, then look at sb.state.chats

`SandboxConfig(quirks=True)` answers as the API documentation's other revisions do.

`create_app` gives the ASGI app for `httpx.ASGITransport`; `run_in_thread` and `serve`
put it on a loopback HTTP server. The behaviour where the API documentation is silent is
described in `bulk_chats.sandbox.app` and `bulk_chats.sandbox.gate`.
"""

from bulk_chats.sandbox.app import SandboxApp, create_app
from bulk_chats.sandbox.config import Faults, SandboxConfig
from bulk_chats.sandbox.seed import (
    AGENTS,
    APPLICATIONS,
    CUSTOMERS,
    DEPARTMENTS,
    VISITOR,
    Agent,
    Customer,
    Department,
    Seed,
)
from bulk_chats.sandbox.server import RunningSandbox, run_in_thread, serve
from bulk_chats.sandbox.state import Change, Chat, Message, SandboxState

__all__ = [
    "AGENTS",
    "APPLICATIONS",
    "CUSTOMERS",
    "DEPARTMENTS",
    "VISITOR",
    "Agent",
    "Change",
    "Chat",
    "Customer",
    "Department",
    "Faults",
    "Message",
    "RunningSandbox",
    "SandboxApp",
    "SandboxConfig",
    "SandboxState",
    "Seed",
    "create_app",
    "run_in_thread",
    "serve",
]
