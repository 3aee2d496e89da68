"""bundle: package a dynamically linked Linux program with its glibc so it runs anywhere."""

__version__ = "0.1.0"
