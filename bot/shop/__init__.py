"""The online shop's side (Shopify's Admin API): the discount codes rewards of issue "shopify_discount" make."""
