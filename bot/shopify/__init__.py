"""Shopify, both ways: the signed webhook in (`webhook`) and its topics handled in the worker (`topics`); out, the
Admin API (`admin`) that makes the discount codes rewards of issue "shopify_discount" give."""
