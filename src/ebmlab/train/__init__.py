"""ebmlab.train"""
