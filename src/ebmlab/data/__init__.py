"""ebmlab.data"""
