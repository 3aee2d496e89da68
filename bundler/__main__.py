"""`python -m bundler` is the same as the `bundle` console script."""

from bundler.entry import script

if __name__ == "__main__":
    script()
