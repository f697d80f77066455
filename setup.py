"""The optional native transcoder (native/, Rust): built when cargo is there; without it the pure path runs."""

from setuptools import setup

try:
    from setuptools_rust import Binding, RustExtension
except ImportError:  # a build without setuptools-rust: the pure Python transcoder only
    rust_extensions = []
else:
    rust_extensions = [
        RustExtension("bridge._native", path="native/Cargo.toml", binding=Binding.PyO3, optional=True,
                      py_limited_api="auto", debug=False),
    ]

setup(rust_extensions=rust_extensions)
