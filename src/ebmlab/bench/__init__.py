"""ebmlab.bench"""
