"""bulk-chats: create HelpCrunch chats in bulk from a CSV or Excel sheet."""
