"""bins"""
