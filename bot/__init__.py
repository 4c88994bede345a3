"""Shokai: a LINE chat-bot that runs a brand's referral and rewards program."""
