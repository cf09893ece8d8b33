"""exprfusion: robust audio-visual facial-expression recognition on Aff-Wild2."""

__version__ = "0.1.0"
