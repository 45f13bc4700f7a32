"""A local stand-in for the HelpCrunch REST API, for trying bulk-chats without an account
and for end-to-end, load and fault tests.

    with run_in_thread(SandboxConfig(rate=600, faults=Faults(seed=7, drop_after=0.1))) as sb:
        ...  # point a client at sb.base_url, then look at sb.state.chats

`SandboxConfig(quirks=True)` answers as the API documentation's other revisions do.

`create_app` gives the ASGI app for `httpx.ASGITransport`; `run_in_thread` and `serve`
put it on a loopback HTTP server. The behaviour where the API documentation is silent is
described in `bulk_chats.sandbox.app` and `bulk_chats.sandbox.gate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bulk_chats._exports import lazy_names

if TYPE_CHECKING:
    from bulk_chats.sandbox.app import SandboxApp, create_app
    from bulk_chats.sandbox.config import Faults, SandboxConfig
    from bulk_chats.sandbox.history import history, load_seed_chats
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
        SeedChat,
        SeedMessage,
    )
    from bulk_chats.sandbox.server import RunningSandbox, run_in_thread, serve
    from bulk_chats.sandbox.state import Change, Chat, Message, SandboxState

_OWNERS: dict[str, str] = {
    "SandboxApp": "bulk_chats.sandbox.app",
    "create_app": "bulk_chats.sandbox.app",
    "Faults": "bulk_chats.sandbox.config",
    "SandboxConfig": "bulk_chats.sandbox.config",
    "AGENTS": "bulk_chats.sandbox.seed",
    "APPLICATIONS": "bulk_chats.sandbox.seed",
    "CUSTOMERS": "bulk_chats.sandbox.seed",
    "DEPARTMENTS": "bulk_chats.sandbox.seed",
    "VISITOR": "bulk_chats.sandbox.seed",
    "Agent": "bulk_chats.sandbox.seed",
    "Customer": "bulk_chats.sandbox.seed",
    "Department": "bulk_chats.sandbox.seed",
    "Seed": "bulk_chats.sandbox.seed",
    "SeedChat": "bulk_chats.sandbox.seed",
    "SeedMessage": "bulk_chats.sandbox.seed",
    "history": "bulk_chats.sandbox.history",
    "load_seed_chats": "bulk_chats.sandbox.history",
    "RunningSandbox": "bulk_chats.sandbox.server",
    "run_in_thread": "bulk_chats.sandbox.server",
    "serve": "bulk_chats.sandbox.server",
    "Change": "bulk_chats.sandbox.state",
    "Chat": "bulk_chats.sandbox.state",
    "Message": "bulk_chats.sandbox.state",
    "SandboxState": "bulk_chats.sandbox.state",
}
"""Each public name → the module that defines it."""

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
    "SeedChat",
    "SeedMessage",
    "create_app",
    "history",
    "load_seed_chats",
    "run_in_thread",
    "serve",
]

__getattr__, __dir__ = lazy_names(__name__, _OWNERS, globals())
