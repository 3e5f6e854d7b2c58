"""ebmlab.report"""
