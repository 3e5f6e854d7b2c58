"""ebmlab.apps"""
