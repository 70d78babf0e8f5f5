"""Bokeh rendering of analysis results: views (one function each) and the page that assembles them."""
