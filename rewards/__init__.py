"""The reward program's domain: rules, ledger, members, referrals, orders.

Pure domain: plain facts in, plain outcomes out. No LINE, aiohttp or message types here.
"""
