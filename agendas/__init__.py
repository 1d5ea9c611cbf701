"""The pure core: model, classification, planning, rendering and block merging.

Nothing here does I/O, reads a clock, or imports SQLAlchemy or googleapiclient.
Time is always an argument (``now``).
"""
