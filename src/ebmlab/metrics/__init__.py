"""ebmlab.metrics"""
