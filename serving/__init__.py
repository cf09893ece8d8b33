"""The exprfusion prediction service (BentoML): ``service.py``, its request and response models, its limits."""
