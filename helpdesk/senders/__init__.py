"""Outbound senders: one database-free module per provider, like the connectors.

Each module exposes `send(out: Outgoing) -> SendResult` and raises `SendError`;
`helpdesk.services.outbound.sending` builds the `Outgoing` from the database and stores the result.
"""
