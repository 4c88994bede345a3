"""Shopify: the signed webhook in (`webhook`), its topics handled in the worker (`topics`)."""
