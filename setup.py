from setuptools import setup

setup(cffi_modules=["ministack/_build.py:ffibuilder"])
