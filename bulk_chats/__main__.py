"""`python -m bulk_chats` runs the command line."""

from bulk_chats.cli.main import main

main()
