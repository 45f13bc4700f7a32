"""Names to ids before sending: the account's agents and departments, customers by email
or userId, and the customers `--create-customers` makes.
"""
