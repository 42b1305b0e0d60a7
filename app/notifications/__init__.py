"""Notifications: an outbox of domain events written in the changer's transaction, and the
deliveries (in-app inbox, e-mail, webhooks) the background worker makes from it."""
